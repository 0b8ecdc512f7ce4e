"""Random points of a perturbation set, for empirical checks of certified bounds (and radii).

A certified lower bound must lie below the network's value at every sampled point; sampling the
vertices of the L-inf box as well as its interior finds the extreme values of piecewise-linear
networks far more often than uniform sampling alone.
"""

import numpy as np


def perturbation_samples(x0, eps, norm, clip, count, rng):
    """`count` points of the set around one point `x0` (any shape): (count, *x0.shape) float64.

    'linf': half the points are random vertices of the box [max(x0 - eps, lo), min(x0 + eps, hi)]
    (or x0 +- eps with `clip=None`), the rest uniform in it. 'l2': half on the sphere, the rest inside
    the ball (the domain box is ignored, as the certifier does).
    """
    x0 = np.asarray(x0, np.float64)
    if norm == "linf":
        lower, upper = x0 - eps, x0 + eps
        if clip is not None:
            lower, upper = np.maximum(lower, clip[0]), np.minimum(upper, clip[1])
        vertices = rng.integers(0, 2, size=(count // 2,) + x0.shape)
        uniform = rng.random((count - count // 2,) + x0.shape)
        return lower + (upper - lower) * np.concatenate([vertices, uniform]).astype(np.float64)
    directions = rng.normal(size=(count, x0.size))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = np.where(np.arange(count) < count // 2, 1.0, rng.random(count) ** (1.0 / x0.size))
    return x0 + (eps * radii[:, None] * directions).reshape((count,) + x0.shape)
