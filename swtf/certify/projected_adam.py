"""Projected Adam ascent on the free parameters of a bound (alpha-CROWN's slopes, beta-CROWN's multipliers).

Every parameter value inside its box gives a sound bound, so the ascent only decides how tight the bound
is: a gradient step of Adam, then projection onto the box [low, high] of its group (alpha in [0, 1],
beta >= 0). The bound is evaluated at the projected point itself, so the gradient does not vanish at the
boundary the way it would through `tf.clip_by_value`. Each bound row depends only on its own parameters,
so the elementwise best finite iterate is kept; the first evaluation is at the initial values, so the
result is never looser than the bound they give.
"""

import tensorflow as tf

BETA1, BETA2 = 0.9, 0.999


def maximize(step, groups, steps, lr_decay):
    """The best (N, S) lower bounds found and the last parameters.

    Args:
      step: callable(params) -> (lower (N, S), gradients): `params` and `gradients` are
        {group name: {key: tensor}}, the gradients of the sum of the lower bounds.
      groups: {group name: (initial {key: tensor}, low, high, learning rate)}.
      steps: Adam steps after the first evaluation.
      lr_decay: learning rates are multiplied by this after every step.
    """
    params = {name: dict(values) for name, (values, _, _, _) in groups.items()}
    best, grads = step(params)
    best = tf.where(tf.math.is_nan(best), tf.constant(-float("inf"), best.dtype), best)
    moments = {name: {key: (tf.zeros_like(v), tf.zeros_like(v)) for key, v in values.items()}
               for name, values in params.items()}
    for t in range(1, steps + 1):
        for name, (_, low, high, learning_rate) in groups.items():
            lr = learning_rate * lr_decay ** (t - 1)
            for key, value in params[name].items():
                grad = grads[name][key]
                grad = tf.where(tf.math.is_finite(grad), grad, tf.zeros_like(grad))
                first, second = moments[name][key]
                first = BETA1 * first + (1 - BETA1) * grad
                second = BETA2 * second + (1 - BETA2) * grad ** 2
                moments[name][key] = first, second
                direction = (first / (1 - BETA1 ** t)) / (tf.sqrt(second / (1 - BETA2 ** t)) + 1e-12)
                params[name][key] = tf.clip_by_value(value + lr * direction, low, high)
        lower, grads = step(params)
        # A non-finite iterate (e.g. a NaN gradient) is never kept: every finite iterate is a sound bound.
        best = tf.where(tf.math.is_finite(lower) & (lower > best), lower, best)
    return best, params
