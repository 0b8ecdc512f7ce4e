"""Exact MILP verification: the encoding matches `forward`, its optima enclose nothing looser than the
relaxations, agree with brute force, find the counterexamples sampling finds, and re-verify radii."""

import itertools

import keras
import numpy as np
import pytest

from swtf.certify import METHODS, bounds, certified_radius, forward, from_keras, margin_bounds
from swtf.certify.exact import (MARGIN_TOL, exact_logit_bounds, exact_margin_bounds, preactivation_bounds,
                                verify_exact)
from swtf.certify.milp import Encoding, affine_maps
from swtf.certify.network import NetworkBuilder, same_pads
from swtf.errors import SwtfError

OPTIMALITY = 1e-5  # HiGHS stops at a relative gap of 1e-6; tiny nets have margins of order 1


def random_model(kind, seed):
    """A tiny Keras net with random weights and biases: 'dense' (3 inputs) or 'conv' (5x5x1, stride-2 'same')."""
    keras.utils.set_random_seed(seed)
    if kind == "dense":
        layers = [keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                  keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    else:
        layers = [keras.Input((5, 5, 1)), keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu"),
                  keras.layers.Flatten(), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.8, w.shape).astype("float32") for w in model.get_weights()])
    return model


def random_points(model, n, seed):
    """Points in [0, 1] and the model's own labels (so every clean point is correctly classified)."""
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + tuple(model.input_shape[1:]))
    return x, np.argmax(forward(from_keras(model), x), axis=1)


def margins_at(model, points, labels):
    """(..., K) f_y - f_j of the Keras model in float32 at `points` (..., *input_shape)."""
    shape = points.shape[:-len(model.input_shape[1:])]
    logits = np.asarray(model(points.reshape((-1,) + tuple(model.input_shape[1:])).astype("float32")))
    logits = logits.reshape(shape + (-1,))
    return np.take_along_axis(logits, labels.reshape(labels.shape + (1,) * (len(shape) - 1) + (1,)), -1) - logits


def identity_minus_network():
    """f(x) = relu(x) - relu(-x) - x on x in R^1: identically 0, but every ReLU is unstable around 0."""
    builder = NetworkBuilder((1,))
    hidden = builder.relu(builder.dense(0, [[1.0, -1.0]], [0.0, 0.0], "split"), "relu")
    merged = builder.dense(hidden, [[1.0], [-1.0]], [0.0], "merge")
    return builder.build(builder.add(merged, builder.dense(0, [[-1.0]], [0.0], "skip"), "out"))


def test_exact_bounds_of_an_identity_are_zero_where_relaxations_are_not():
    network = identity_minus_network()
    x = np.array([[0.5]])
    lower, upper = exact_logit_bounds(network, x, 0.5)  # x in [0, 1]
    np.testing.assert_allclose(lower.value, [[0.0]], atol=1e-9)
    np.testing.assert_allclose(upper.value, [[0.0]], atol=1e-9)
    lower, upper = exact_logit_bounds(network, x, 1.0, clip=None)  # x in [-0.5, 1.5], ReLUs unstable
    np.testing.assert_allclose([lower.value[0, 0], upper.value[0, 0]], [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose([lower.bound[0, 0], upper.bound[0, 0]], [0.0, 0.0], atol=1e-6)
    # The triangle relaxation cannot see the cancellation: relu(x) - relu(-x) - x >= -l*u/(u-l) etc.
    crown_lower, crown_upper = bounds(network, x, 1.0, method="crown", clip=None)
    assert crown_lower[0, 0] < -0.1 and crown_upper[0, 0] > 0.1


def every_op_network():
    """5x5x2 input -> affine -> conv 3x3 stride 2 'same' -> relu -> avg_pool 'same' -> conv 1x1 -> add
    (residual) -> relu -> flatten -> dense: every op of the representation."""
    rng = np.random.default_rng(0)
    builder = NetworkBuilder((5, 5, 2))
    a = builder.affine(0, rng.uniform(0.5, 2, (2,)), rng.normal(size=(2,)), "scale")
    c = builder.conv2d(a, rng.normal(size=(3, 3, 2, 3)), rng.normal(size=(3,)), (2, 2),
                       same_pads(5, 3, 2) + same_pads(5, 3, 2), "conv")
    r = builder.relu(c, "relu1")
    p = builder.avg_pool(r, (2, 2), (1, 1), "same", "pool")
    q = builder.conv2d(p, rng.normal(size=(1, 1, 3, 3)), rng.normal(size=(3,)), (1, 1), (0, 0, 0, 0), "conv1x1")
    s = builder.relu(builder.add(q, p, "residual"), "relu2")
    flat = builder.reshape(s, (-1,), "flatten")
    return builder.build(builder.dense(flat, rng.normal(size=(27, 4)), rng.normal(size=(4,)), "logits"))


def test_encoding_with_the_input_fixed_reproduces_forward_for_every_op():
    network = every_op_network()
    maps = affine_maps(network)
    x = np.random.default_rng(1).uniform(0, 1, (3, 5, 5, 2))
    pre = preactivation_bounds(network, x, np.zeros(3), (0.0, 1.0))
    expected = forward(network, x)
    for n in range(3):
        encoding = Encoding(network, maps, (x[n], x[n]), {k: (lo[n], hi[n]) for k, (lo, hi) in pre.items()})
        for k in range(4):
            solution = encoding.minimize(np.eye(4)[k], time_limit=10)
            assert solution.status == "optimal"
            np.testing.assert_allclose(solution.value, expected[n, k], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("kind,seed", [("dense", 0), ("dense", 1), ("conv", 2)])
def test_exact_margins_are_attained_and_enclosed_by_every_method(kind, seed):
    model = random_model(kind, seed)
    x, y = random_points(model, 3, seed)
    eps = 0.08
    exact = exact_margin_bounds(model, x, y, eps)
    finite = np.isfinite(exact.value)
    assert np.all(exact.bound[finite] <= exact.value[finite] + 1e-9)
    assert np.all(exact.value[finite] - exact.bound[finite] <= OPTIMALITY)
    # Attained: the argmin points lie in the ball and the model evaluates them to the optimal values.
    lo, hi = np.maximum(x - eps, 0), np.minimum(x + eps, 1)
    assert np.all(exact.points >= lo[:, None] - 1e-12) and np.all(exact.points <= hi[:, None] + 1e-12)
    attained = np.take_along_axis(margins_at(model, exact.points, y), np.arange(3)[None, :, None], -1)[..., 0]
    np.testing.assert_allclose(attained[finite], exact.value[finite], atol=1e-5)
    for method in METHODS:
        certified = margin_bounds(model, x, y, eps, method=method)
        assert np.all(certified[finite] <= exact.value[finite] + 1e-9), method
    logits_lower, logits_upper = exact_logit_bounds(model, x, eps)
    for method in METHODS:
        lower, upper = bounds(model, x, eps, method=method)
        assert np.all(lower <= logits_lower.value + 1e-9) and np.all(upper >= logits_upper.value - 1e-9), method


def test_exact_minimum_agrees_with_a_dense_grid_on_a_two_input_net():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(6, activation="relu"), keras.layers.Dense(2)])
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 1.0, w.shape).astype("float32") for w in model.get_weights()])
    network = from_keras(model)
    x, eps, steps = np.array([[0.4, 0.55]]), 0.3, 401
    lower, upper = exact_logit_bounds(network, x, eps)
    axis = np.linspace(0.1, 0.7, steps)  # the box [0.1, 0.7] x [0.25, 0.85]
    grid = np.stack(np.meshgrid(axis, axis + 0.15, indexing="ij"), -1).reshape(-1, 2)
    values = forward(network, grid)
    # Linf Lipschitz constant of each logit (a product of induced inf-norms) bounds the grid's miss.
    kernels = [node.params["kernel"] for node in network.nodes if node.op == "dense"]
    lipschitz = np.abs(kernels[0]).sum(0).max() * np.abs(kernels[1]).sum(0).max() * np.abs(kernels[2]).sum(0)
    miss = lipschitz * (axis[1] - axis[0]) / 2
    assert np.all(values.min(0) >= lower.value[0] - 1e-9) and np.all(values.max(0) <= upper.value[0] + 1e-9)
    assert np.all(values.min(0) <= lower.value[0] + miss) and np.all(values.max(0) >= upper.value[0] - miss)


@pytest.mark.parametrize("kind,seed", [("dense", 4), ("conv", 5)])
def test_milp_finds_a_counterexample_whenever_sampling_does(kind, seed):
    model = random_model(kind, seed)
    x, y = random_points(model, 4, seed)
    rng = np.random.default_rng(seed)
    for eps in (0.02, 0.1, 0.3):
        results = verify_exact(model, x, y, eps)
        lo, hi = np.maximum(x - eps, 0), np.minimum(x + eps, 1)
        samples = rng.uniform(lo[:, None], hi[:, None], (4, 2000) + x.shape[1:])
        corners = np.stack([np.where(np.array(c).reshape(x.shape[1:]), hi, lo) for c in itertools.product(
            [0, 1], repeat=int(np.prod(x.shape[1:])))][:256], 1) if kind == "dense" else samples[:, :0]
        samples = np.concatenate([samples, corners], 1)
        fooled = (margins_at(model, samples, y) < 0).any(-1).any(-1)
        for n, result in enumerate(results):
            if fooled[n]:
                assert result.status == "counterexample", (eps, n, result)
            if result.status == "counterexample":
                point = result.counterexample
                assert np.all(point >= lo[n] - 1e-12) and np.all(point <= hi[n] + 1e-12)
                assert (margins_at(model, point[None], y[n:n + 1]) < 0).any()
                assert result.upper < 0
            else:
                assert not fooled[n] and result.lower <= result.upper + 1e-9
            if result.status == "certified":
                assert result.lower > MARGIN_TOL


@pytest.mark.parametrize("kind,seed", [("dense", 6), ("dense", 7), ("conv", 8), ("conv", 9)])
def test_certified_radius_is_reverified_by_the_milp(kind, seed):
    model = random_model(kind, seed)
    x, y = random_points(model, 3, seed)
    radius = certified_radius(model, x, y, method="crown")
    assert np.all(radius > 0)
    crown_at_radius = margin_bounds(model, x, y, radius, method="crown").min(axis=1)
    assert np.all(crown_at_radius > 0)
    for n, result in enumerate(verify_exact(model, x, y, radius)):
        assert result.status != "counterexample"
        assert result.upper >= crown_at_radius[n] - 1e-9
        if crown_at_radius[n] > MARGIN_TOL:
            assert result.status == "certified"


def test_a_misclassified_point_has_radius_zero_and_is_its_own_counterexample():
    model = random_model("dense", 10)
    x, y = random_points(model, 2, 10)
    wrong = (y + 1) % 3
    np.testing.assert_array_equal(certified_radius(model, x, wrong, method="crown"), [0.0, 0.0])
    for n, result in enumerate(verify_exact(model, x, wrong, 0.0)):
        assert result.status == "counterexample"
        np.testing.assert_array_equal(result.counterexample, x[n])


def test_time_limit_gives_unknown_not_a_verdict():
    model = random_model("conv", 11)
    x, y = random_points(model, 1, 11)
    crown = margin_bounds(model, x, y, 0.5, method="crown")
    assert crown.min() < 0  # CROWN alone cannot decide: the MILP must run
    result, = verify_exact(model, x, y, 0.5, time_limit=1e-6)
    assert result.status == "unknown" and "class" in result.reason and result.lower < 0


def test_l2_and_bad_arguments_are_refused():
    model = random_model("dense", 12)
    x, y = random_points(model, 1, 12)
    with pytest.raises(SwtfError, match="quadratic"):
        verify_exact(model, x, y, 0.1, norm="l2")
    with pytest.raises(SwtfError, match="time_limit"):
        verify_exact(model, x, y, 0.1, time_limit=0)
    with pytest.raises(SwtfError, match="eps"):
        exact_margin_bounds(model, x, y, -0.1)
