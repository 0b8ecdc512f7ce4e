"""Projections, steepest-ascent directions and random starts of `swtf.attack.lp_balls`, against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from swtf.attack import lp_balls

CLIP = (0.0, 1.0)


def _norms(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.linalg.norm(flat, axis=1)


def test_steepest_ascent_attains_the_dual_norm():
    """<d, g> = ||g||_1 for L-inf (d = sign g) and ||g||_2 for L2, with ||d|| = 1 in each norm."""
    g = np.random.default_rng(0).normal(size=(5, 3, 3, 2)).astype(np.float32)
    flat = g.reshape(5, -1)
    for norm, dual in (("linf", np.abs(flat).sum(1)), ("l2", np.linalg.norm(flat, axis=1))):
        d = lp_balls.steepest_ascent(tf.constant(g), norm).numpy()
        np.testing.assert_allclose((d.reshape(5, -1) * flat).sum(1), dual, rtol=1e-5)
        np.testing.assert_allclose(_norms(d, norm), 1.0, rtol=1e-6)


def test_steepest_ascent_of_zero_gradient_is_zero():
    for norm in lp_balls.NORMS:
        assert np.all(lp_balls.steepest_ascent(tf.zeros((2, 3)), norm).numpy() == 0)


@pytest.mark.parametrize("norm", lp_balls.NORMS)
def test_project_is_the_nearest_point_of_ball_and_box(norm):
    """The projection lies in ball and box, and no sampled point of ball and box is nearer to x_adv."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(4, 6)).astype(np.float32)
    x_adv = x + rng.normal(scale=0.5, size=x.shape).astype(np.float32)
    eps = 0.3
    p = lp_balls.project(tf.constant(x_adv), tf.constant(x), eps, norm, CLIP).numpy()
    assert np.all(_norms(p - x, norm) <= eps + 1e-6) and p.min() >= 0 and p.max() <= 1
    # Feasible samples: random directions scaled into the ball, clipped into the box.
    for i in range(len(x)):
        d = rng.normal(size=(2000, 6))
        d *= (eps * rng.uniform(size=(2000, 1)) ** (1 / 6)) / _norms(d, norm)[:, None]
        feasible = np.clip(x[i] + d, 0, 1)
        assert np.linalg.norm(p[i] - x_adv[i]) <= np.linalg.norm(feasible - x_adv[i], axis=1).min() + 1e-5


@pytest.mark.parametrize("norm", lp_balls.NORMS)
def test_random_start_fills_the_ball_and_is_seeded(norm):
    x = np.full((4000, 2), 0.5, np.float32)
    seed = tf.constant([3, 4], tf.int64)
    start = lp_balls.random_start(tf.constant(x), 0.2, norm, CLIP, seed).numpy()
    radii = _norms(start - x, norm)
    assert radii.max() <= 0.2 + 1e-6
    # Uniform in a 2-d ball: P(radius <= r) = (r / eps)^2 for both norms.
    for r in (0.05, 0.1, 0.15):
        assert abs(np.mean(radii <= r) - (r / 0.2) ** 2) < 0.03
    np.testing.assert_array_equal(start, lp_balls.random_start(tf.constant(x), 0.2, norm, CLIP, seed).numpy())
    assert not np.array_equal(start, lp_balls.random_start(tf.constant(x), 0.2, norm, CLIP, seed + 1).numpy())
