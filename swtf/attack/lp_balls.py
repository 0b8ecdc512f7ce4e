"""The threat models, L-inf and L2 balls: steepest-ascent directions, projections and random starts.

Every function works on a batch: each example has its own ball centred at its clean input, and norms
are taken over all axes but the first. The input box `clip = (low, high)` is applied after the ball
projection; since the clean input lies in the box, clipping only shrinks each coordinate of the
perturbation, so the clipped point stays in the ball. Float32 rounding of x + delta can still overshoot
the ball by half an ulp; `pull_inside` removes that, so returned points are in the ball exactly.
"""

import numpy as np
import tensorflow as tf

NORMS = ("linf", "l2")

# Guards the divisions by a norm: a zero gradient or perturbation stays zero instead of becoming NaN.
_TINY = 1e-12


def _per_example(reduce_fn, t):
    return reduce_fn(t, axis=list(range(1, len(t.shape))), keepdims=True)


def l1_norm(t):
    """Per-example L1 norm, shape (batch, 1, ..., 1), at least `_TINY`."""
    return tf.maximum(_per_example(tf.reduce_sum, tf.abs(t)), _TINY)


def l2_norm(t):
    """Per-example L2 norm, shape (batch, 1, ..., 1), at least `_TINY`."""
    return tf.sqrt(tf.maximum(_per_example(tf.reduce_sum, tf.square(t)), _TINY ** 2))


def steepest_ascent(grad, norm):
    """The unit-norm direction d maximising <d, grad>: sign(grad) for L-inf, grad / ||grad||_2 for L2."""
    if norm == "linf":
        return tf.sign(grad)
    return grad / l2_norm(grad)


def project(x_adv, x, eps, norm, clip):
    """The nearest point to `x_adv` in the `norm` ball of radius `eps` around `x`, clipped to the box.

    L-inf: clip each coordinate of the perturbation to [-eps, eps] (the exact Euclidean projection).
    L2: scale the perturbation by min(1, eps / ||delta||_2) (the exact Euclidean projection).
    For L-inf the result is the exact projection onto ball and box (both split per coordinate); for L2
    it is a point of both, but not always the nearest one when the box binds.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        delta = delta * tf.minimum(1.0, eps / l2_norm(delta))
    return tf.clip_by_value(x + delta, clip[0], clip[1])


def random_start(x, eps, norm, clip, seed, skip=0):
    """A point drawn uniformly from the `norm` ball of radius `eps` around each `x`, clipped to the box.

    L-inf: independent uniform coordinates in [-eps, eps]. L2: a Gaussian direction scaled to radius
    eps * u^(1/d), u ~ U(0, 1), d the input dimension (uniform in volume). `seed` is a stateless
    seed, shape (2,), so the same seed gives the same start. `skip`: `x` is rows skip.. of a batch; the
    draws fill rows in order, so each row gets the start it gets when the whole batch is attacked.
    """
    skip = tf.cast(skip, tf.int32)
    shape = tf.concat([[tf.shape(x)[0] + skip], tf.shape(x)[1:]], axis=0)
    if norm == "linf":
        delta = tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0) * eps
    else:
        direction_seed, radius_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        direction = tf.random.stateless_normal(shape, direction_seed)
        dim = tf.cast(tf.reduce_prod(shape[1:]), x.dtype)
        radius_shape = tf.concat([shape[:1], tf.ones_like(shape[1:])], axis=0)
        radius = eps * tf.random.stateless_uniform(radius_shape, radius_seed) ** (1.0 / dim)
        delta = direction / l2_norm(direction) * radius
    return project(x + delta[skip:], x, eps, norm, clip)


def distances(delta, norm):
    """Per-point NumPy norms of perturbations `delta` (N, ...): max |delta| for L-inf, the L2 norm for L2."""
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.linalg.norm(flat, axis=1)


def pull_inside(x_adv, x, eps, norm):
    """Float32 NumPy `x_adv` with every point's perturbation, measured exactly (float64), at most `eps`.

    Each overshooting coordinate (L-inf), or every moved coordinate of an overshooting point (L2), steps
    one float32 ulp towards x until the point is inside (x + delta rounds to within half an ulp, so one
    step is usually enough); moving towards x keeps the point in the box. A point still outside after a
    few steps (never seen) is replaced by x itself.
    """
    x_adv, x = np.array(x_adv, np.float32), np.asarray(x, np.float32)
    for _ in range(8):
        delta = x_adv.astype(np.float64) - x
        outside = distances(delta, norm) > eps
        if not outside.any():
            return x_adv
        if norm == "linf":
            over = np.abs(delta) > eps
        else:
            over = outside.reshape((-1,) + (1,) * (delta.ndim - 1)) & (delta != 0)
        x_adv[over] = np.nextafter(x_adv[over], x[over])
    outside = distances(x_adv.astype(np.float64) - x, norm) > eps
    x_adv[outside] = x[outside]
    return x_adv
