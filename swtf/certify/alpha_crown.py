"""alpha-CROWN: CROWN with the lower ReLU slopes of unstable neurons optimised for the final bound.

Any lower slope alpha in [0, 1] gives a valid relaxation (relu(x) >= alpha * x on [l, u] with l < 0 < u),
so every alpha gives a sound bound, and the best one found is kept. Alphas are separate for every point,
spec row and neuron (as in auto_LiRPA), initialised at CROWN's adaptive slopes, and updated by projected
Adam ascent on the sum of the lower bounds (`projected_adam`: evaluated at the projected alphas, the
elementwise best finite iterate kept), so the result is never looser than CROWN with the same
intermediate bounds.

Intermediate (pre-activation) bounds are not re-optimised: they are the full-CROWN bounds.
"""

import tensorflow as tf

from swtf.certify import projected_adam
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
    """Best (N, S) lower bounds found by projected Adam over the alphas (`projected_adam`).

    Args:
      step: `bound_and_gradient` bound to the network's backward pass (compiled by the caller).
      spec, inputs, relaxations: as for `backward_crown.backward_lower_bound`.
      steps: number of Adam steps after the CROWN initialisation.
      learning_rate: initial Adam step size, decayed by LR_DECAY per step.
    """
    def bound(params):
        lower, grads = step(spec, inputs, relaxations, params["alpha"])
        return lower, {"alpha": grads}

    groups = {"alpha": (initial_alphas(relaxations, spec.shape[1]), 0.0, 1.0, learning_rate)}
    return projected_adam.maximize(bound, groups, steps, LR_DECAY)[0]
