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


# Radii of the study's grids, and clean pixels where x - eps and x + eps land near the box's faces 0 and 1:
# x - eps a few float32 ulps of 1e-8 above 0 (where float32(eps) overshoots eps by far more than an ulp),
# exactly 0, just below 0; x + eps just below, at and just above 1.
EPS_GRID = (1 / 255, 2 / 255, 8 / 255, 0.1, 0.15, 0.3)


def _edge_pixels(eps):
    near = [eps + 1e-9, eps + 3e-8, eps, eps - 1e-9, 1 - eps - 3e-8, 1 - eps, 1 - eps + 1e-9, 0.5, 0.0, 1.0]
    return np.array([np.clip(np.float32(v), 0, 1) for v in near], np.float32)


@pytest.mark.parametrize("eps", EPS_GRID)
def test_toward_center_never_overshoots_delta(eps):
    """Each coordinate of the float32 point lies between x and x + delta, measured in float64; rounding to
    nearest would overshoot x - eps just above 0 by up to 6e-9 (float32(eps) - eps)."""
    x = _edge_pixels(eps)
    for delta in (np.full(x.shape, eps), np.full(x.shape, -eps),
                  np.random.default_rng(0).uniform(-eps, eps, x.shape)):
        point = lp_balls.toward_center(tf.constant(x), tf.constant(delta)).numpy()
        moved = point.astype(np.float64) - x
        assert np.all(np.abs(moved) <= np.abs(delta)) and np.all(moved * delta >= 0)
        # ... and it is the float32 nearest to x + delta on x's side: one ulp further crosses it.
        further = np.nextafter(point, np.where(delta > 0, np.float32(np.inf), np.float32(-np.inf)))
        assert np.all((np.abs(further.astype(np.float64) - x) > np.abs(delta)) | (moved == delta))


@pytest.mark.parametrize("eps", EPS_GRID)
def test_linf_limits_are_the_extreme_float32_points_of_ball_and_box(eps):
    """low is the smallest float32 >= max(x - eps, 0), high the largest <= min(x + eps, 1), by brute force
    over float32 neighbours in float64."""
    x = _edge_pixels(eps)
    low, high = (t.numpy() for t in lp_balls.linf_limits(tf.constant(x), eps, CLIP))

    def inside(p):
        return (np.abs(p.astype(np.float64) - x) <= eps) & (p >= 0) & (p <= 1)

    assert np.all(inside(low)) and np.all(inside(high))
    assert not np.any(inside(np.nextafter(low, np.float32(-1))) & (low > 0))
    assert not np.any(inside(np.nextafter(high, np.float32(2))) & (high < 1))
    assert np.all(low <= x) and np.all(x <= high)


@pytest.mark.parametrize("norm", lp_balls.NORMS)
@pytest.mark.parametrize("eps", EPS_GRID + (0.5, 2.0))
def test_projection_is_exactly_inside_ball_and_box(norm, eps):
    """Points far outside, just outside and on the sphere, around pixels at the box's edges: every projected
    point is in the ball as float64 measures it, with no tolerance, and in the box."""
    rng = np.random.default_rng(3)
    x = np.stack([np.resize(_edge_pixels(eps), 49)[rng.permutation(49)] for _ in range(60)]).astype(np.float32)
    direction = rng.normal(size=x.shape)
    if norm == "linf":
        direction = np.sign(direction)
    else:
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    scale = rng.choice([1.0, 1.0 + 1e-7, 3.0, 0.5], size=(len(x), 1))
    x_adv = (x + eps * scale * direction).astype(np.float32)
    p = lp_balls.project(tf.constant(x_adv), tf.constant(x), eps, norm, CLIP).numpy()
    assert p.dtype == np.float32
    assert np.all(_norms(p.astype(np.float64) - x, norm) <= eps)
    assert p.min() >= 0.0 and p.max() <= 1.0
    # What rounding towards x gives up is a few float32 ulps: the projection still goes (almost) all the way.
    if norm == "linf":
        exact = np.clip(x_adv.astype(np.float64), np.maximum(x - eps, 0), np.minimum(x + eps, 1))
        np.testing.assert_allclose(p, exact, atol=2e-7, rtol=0)
