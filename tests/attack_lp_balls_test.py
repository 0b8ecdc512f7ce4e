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


def test_linf_project_is_the_exact_projection_onto_ball_and_box():
    """Coordinate-wise, ball and box intersect in [max(x - eps, 0), min(x + eps, 1)]."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(50, 6)).astype(np.float32)
    x_adv = x + rng.normal(scale=0.5, size=x.shape).astype(np.float32)
    p = lp_balls.project(tf.constant(x_adv), tf.constant(x), 0.3, "linf", CLIP).numpy()
    np.testing.assert_allclose(p, np.clip(x_adv, np.maximum(x - 0.3, 0), np.minimum(x + 0.3, 1)), atol=1e-7)


def test_l2_project_scales_into_the_ball_then_clips():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.4, 0.6, size=(50, 6)).astype(np.float32)
    x_adv = x + rng.normal(scale=0.2, size=x.shape).astype(np.float32)
    p = lp_balls.project(tf.constant(x_adv), tf.constant(x), 0.1, "l2", CLIP).numpy()
    delta = (x_adv - x).astype(np.float64)
    norm = np.linalg.norm(delta, axis=1, keepdims=True)
    # Away from the box's faces the box never binds: this is the Euclidean projection onto the ball.
    np.testing.assert_allclose(p, x + delta * np.minimum(1, 0.1 / norm), atol=1e-6)
    assert np.all(norm > 0.1)  # every point was outside the ball
    # Where the box binds, the point stays feasible but is not the nearest one of ball and box:
    # x = (0.9, 0.5), x_adv = (2.9, 1.5), eps = 0.5 -> (0.9, 0.5) + 0.5 (2, 1) / sqrt(5), then x1 -> 1.
    p = lp_balls.project(tf.constant([[2.9, 1.5]]), tf.constant([[0.9, 0.5]]), 0.5, "l2", CLIP).numpy()
    np.testing.assert_allclose(p, [[1.0, 0.5 + 0.5 / np.sqrt(5)]], atol=1e-6)


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


def test_pull_inside_removes_float32_overshoot_and_keeps_exact_points():
    """0.9 + 0.1 rounds to 1.0 in float32, 2.4e-8 past the ball around float32(0.9); one ulp back is inside.
    L2: a perturbation scaled to length eps in float32 can overshoot the same way."""
    x = np.full((1, 2), 0.9, np.float32)
    x_adv = x + np.float32(0.1)
    assert np.abs(x_adv.astype(np.float64) - x).max() > 0.1
    pulled = lp_balls.pull_inside(x_adv, x, 0.1, "linf")
    np.testing.assert_array_equal(pulled, np.nextafter(x_adv, x))
    assert np.abs(pulled.astype(np.float64) - x).max() <= 0.1
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (200, 7)).astype(np.float32)
    direction = rng.normal(size=x.shape)
    x_adv = (x + 0.3 * direction / np.linalg.norm(direction, axis=1, keepdims=True)).astype(np.float32)
    pulled = lp_balls.pull_inside(x_adv, x, 0.3, "l2")
    assert np.all(np.linalg.norm(pulled.astype(np.float64) - x, axis=1) <= 0.3)
    inside = np.linalg.norm(x_adv.astype(np.float64) - x, axis=1) <= 0.3
    assert not inside.all()  # the rounding overshoots on some points
    np.testing.assert_array_equal(pulled[inside], x_adv[inside])  # points already inside are not moved
    assert np.abs(pulled - x_adv).max() < 1e-6
