"""alpha-CROWN: CROWN with the lower ReLU slopes of unstable neurons optimised for the final bound.

Any lower slope alpha in [0, 1] gives a valid relaxation (relu(x) >= alpha * x on [l, u] with l < 0 < u),
so every alpha gives a sound bound, and the best one found is kept. Alphas are separate for every point,
spec row and neuron (as in auto_LiRPA), initialised at CROWN's adaptive slopes, and updated by projected
Adam ascent on the sum of the lower bounds: a gradient step, then projection onto [0, 1]. The bound is
evaluated at the projected alpha itself, so the gradient does not vanish at the boundary the way it
would through `tf.clip_by_value`. Each row's bound depends only on its own alphas, so keeping the
elementwise best finite iterate is never looser than CROWN with the same intermediate bounds.

Intermediate (pre-activation) bounds are not re-optimised: they are the full-CROWN bounds.
"""

import tensorflow as tf

from swtf.certify.relu_relaxation import Relaxation

STEPS = 20
LEARNING_RATE = 0.5
LR_DECAY = 0.98


def bound_and_gradient(backward, spec, inputs, relaxations, alphas):
    """The (N, S) lower bounds for `alphas` and the gradient of their sum with respect to `alphas`."""
    with tf.GradientTape() as tape:
        tape.watch(alphas)
        lower = backward(spec, inputs, relaxations, alphas)
        objective = tf.reduce_sum(lower)
    return lower, tape.gradient(objective, alphas)


def initial_alphas(relaxations, num_specs):
    """CROWN's adaptive lower slopes of the ReLUs, one copy per spec row: {relu id: (N, S, *shape)}. Other
    nonlinear nodes (sigmoid, tanh, max pooling) keep their CROWN relaxation."""
    return {i: tf.repeat(r.lower_slope[:, None], num_specs, axis=1) for i, r in relaxations.items()
            if isinstance(r, Relaxation)}


def optimized_lower_bound(step, spec, inputs, relaxations, steps=STEPS, learning_rate=LEARNING_RATE):
    """Best (N, S) lower bounds found by projected Adam over the alphas.

    Args:
      step: `bound_and_gradient` bound to the network's backward pass (compiled by the caller).
      spec, inputs, relaxations: as for `backward_crown.backward_lower_bound`.
      steps: number of Adam steps after the CROWN initialisation.
      learning_rate: initial Adam step size, decayed by LR_DECAY per step.
    """
    alphas = initial_alphas(relaxations, spec.shape[1])
    best, grads = step(spec, inputs, relaxations, alphas)
    first = {i: tf.zeros_like(a) for i, a in alphas.items()}
    second = {i: tf.zeros_like(a) for i, a in alphas.items()}
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        lr = learning_rate * LR_DECAY ** (t - 1)
        grads = {i: tf.where(tf.math.is_finite(g), g, tf.zeros_like(g)) for i, g in grads.items()}
        for i in alphas:
            first[i] = beta1 * first[i] + (1 - beta1) * grads[i]
            second[i] = beta2 * second[i] + (1 - beta2) * grads[i] ** 2
            direction = (first[i] / (1 - beta1 ** t)) / (tf.sqrt(second[i] / (1 - beta2 ** t)) + 1e-12)
            alphas[i] = tf.clip_by_value(alphas[i] + lr * direction, 0.0, 1.0)
        lower, grads = step(spec, inputs, relaxations, alphas)
        # A non-finite iterate (e.g. a NaN gradient) is never kept: every finite iterate is a sound bound.
        best = tf.where(tf.math.is_finite(lower) & (lower > best), lower, best)
    return best
