"""Exact MILP encoding of max pooling: on tiny pooled ReLU nets (every pooling geometry) the MILP optimum is
attained by its own point, lies below dense sampling and PGD, agrees with a brute-force grid, and encloses
nothing looser than the relaxations; smooth activations are refused before any work."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swtf.certify import METHODS, bounds, margin_bounds
from swtf.certify import exact as exact_module
from swtf.certify.exact import (MARGIN_TOL, exact_logit_bounds, exact_margin_bounds, preactivation_bounds,
                                verify_exact)
from swtf.certify.linear_ops import network_function
from swtf.certify.milp import Encoding, affine_maps
from swtf.certify.network import NetworkBuilder, forward, same_pads
from swtf.certify.sampling import perturbation_samples
from swtf.errors import SwtfError

OPTIMALITY = 1e-5  # HiGHS stops at a relative gap of 1e-6; these nets have objectives of order 1-10
ATTAINED = 1e-6

# name: (input shape, conv (kernel, filters, 'same'?) or None for max pooling directly on the input,
#        pool, strides, padding; pool None means global max pooling over the whole map)
GEOMETRIES = {
    "2x2_stride2_valid": ((5, 5, 1), (2, 2, False), (2, 2), (2, 2), "valid"),
    "3x3_stride1_same": ((4, 4, 1), (2, 2, True), (3, 3), (1, 1), "same"),
    "3x2_strides21_same_odd": ((5, 5, 2), (2, 2, True), (3, 2), (2, 1), "same"),
    "on_the_input": ((4, 4, 1), None, (2, 2), (1, 1), "valid"),
    "global": ((4, 4, 1), (2, 2, False), None, (1, 1), "valid"),
    "overlapping_3x3_stride2": ((5, 5, 2), (2, 2, True), (3, 3), (2, 2), "valid"),
    "stacked": ((5, 5, 1), (2, 2, False), (2, 2), (1, 1), "valid"),  # a second max pool follows the first
}


def pooled_network(geometry, seed, classes=3):
    """input -> [conv -> relu] -> max_pool -> [max_pool] -> flatten -> dense -> relu -> dense (logits)."""
    in_shape, conv, pool, strides, padding = GEOMETRIES[geometry]
    rng = np.random.default_rng(seed)
    builder = NetworkBuilder(in_shape)
    x = 0
    if conv is not None:
        kernel, filters, same = conv
        pads = same_pads(in_shape[0], kernel, 1) + same_pads(in_shape[1], kernel, 1) if same else (0,) * 4
        x = builder.conv2d(x, rng.normal(size=(kernel, kernel, in_shape[2], filters)) / kernel,
                           rng.normal(size=filters) * 0.3, (1, 1), pads, "conv")
        x = builder.relu(x, "relu")
    x = builder.max_pool(x, pool or builder.shape(x)[:2], strides, padding, "pool")
    if geometry == "stacked":
        x = builder.max_pool(x, (2, 2), (1, 1), "same", "pool2")
    x = builder.reshape(x, (-1,), "flatten")
    width = builder.shape(x)[0]
    x = builder.relu(builder.dense(x, rng.normal(size=(width, 6)) / np.sqrt(width), rng.normal(size=6) * 0.3,
                                   "dense"), "dense_relu")
    return builder.build(builder.dense(x, rng.normal(size=(6, classes)), rng.normal(size=classes), "logits"))


def box_of(x, eps, clip=(0.0, 1.0)):
    return np.maximum(x - eps, clip[0]), np.minimum(x + eps, clip[1])


def encoding_of(network, x, eps):
    """The Encoding of one point's ball (in [0, 1]) and its number of max-pool binaries."""
    pre = preactivation_bounds(network, x[None], np.array([eps]), (0.0, 1.0))
    encoding = Encoding(network, affine_maps(network), box_of(x, eps), {k: (lo[0], hi[0]) for k, (lo, hi) in
                                                                          pre.items()})
    relu_binaries = sum(int(np.sum((pre[node.inputs[0]][0] < 0) & (pre[node.inputs[0]][1] > 0)))
                        for node in network.nodes if node.op == "relu")
    return encoding, encoding.num_binaries - relu_binaries


def pgd_minimum(network, objective, starts, lower, upper, steps=60):
    """The smallest <objective, f(x)> projected sign-gradient descent reaches from `starts` (B, *input_shape)."""
    f = network_function(network, tf.float64)
    c = tf.constant(objective, tf.float64)
    x = tf.constant(starts, tf.float64)
    best = np.inf
    for step in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(tf.reshape(f(x), (len(starts), -1)) * c, axis=1)
            total = tf.reduce_sum(value)
        best = min(best, float(tf.reduce_min(value)))
        size = (upper - lower) * 0.25 * (1 - step / steps) ** 2
        x = tf.clip_by_value(x - size * tf.sign(tape.gradient(total, x)), lower, upper)
    return min(best, float((forward(network, x.numpy()).reshape(len(starts), -1) @ objective).min()))


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_encoding_with_the_input_fixed_reproduces_forward(geometry):
    network = pooled_network(geometry, 0)
    x = np.random.default_rng(1).uniform(0, 1, (2,) + network.input_shape)
    expected = forward(network, x)
    for n in range(2):
        encoding, _ = encoding_of(network, x[n], 0.0)
        for k in range(3):
            solution = encoding.minimize(np.eye(3)[k], time_limit=10)
            assert solution.status == "optimal"
            np.testing.assert_allclose(solution.value, expected[n, k], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_milp_minimum_is_attained_and_below_sampling_and_pgd(geometry):
    network = pooled_network(geometry, 1)
    rng = np.random.default_rng(2)
    undecided_somewhere = False
    for trial in range(2):
        x, eps = rng.uniform(0, 1, network.input_shape), (0.06, 0.15)[trial]
        lower, upper = box_of(x, eps)
        encoding, pool_binaries = encoding_of(network, x, eps)
        undecided_somewhere |= pool_binaries > 0
        objective = rng.normal(size=3)
        solution = encoding.minimize(objective, time_limit=300)  # seconds on an idle core; far more under load
        assert solution.status == "optimal"
        assert solution.bound <= solution.value + 1e-9 and solution.value - solution.bound <= OPTIMALITY
        # (b) attained: the MILP's own point lies in the box and evaluates to the MILP value.
        point = solution.point
        assert np.all(point >= lower - 1e-6) and np.all(point <= upper + 1e-6)  # HiGHS: feasibility tol 1e-7
        point = np.clip(point, lower, upper)
        assert abs(float(forward(network, point[None])[0] @ objective) - solution.value) <= ATTAINED
        # (a) containment: no sampled point (vertices and interior) and no PGD point goes below it.
        samples = perturbation_samples(x, eps, "linf", (0.0, 1.0), 6000, rng)
        values = forward(network, samples) @ objective
        assert values.min() >= solution.value - 1e-9
        starts = samples[np.argsort(values)[:16]]
        assert pgd_minimum(network, objective, starts, lower, upper) >= solution.value - 1e-9
    assert undecided_somewhere, "no pooling window was left undecided: the max-pool encoding was not exercised"


@pytest.mark.parametrize("seed,padding", [(0, "valid"), (1, "same"), (2, "valid")])
def test_two_input_pooled_net_agrees_with_a_brute_force_grid(seed, padding):
    """x in R^2 as a (1, 2, 1) map -> 1x1 conv (6 filters) -> relu -> max_pool (1, 2) -> dense -> relu -> dense."""
    rng = np.random.default_rng(seed)
    builder = NetworkBuilder((1, 2, 1))
    h = builder.relu(builder.conv2d(0, rng.normal(size=(1, 1, 1, 6)), rng.normal(size=6) * 0.5, (1, 1), (0,) * 4,
                                    "conv"), "relu")
    pooled = builder.reshape(builder.max_pool(h, (1, 2), (1, 1), padding, "pool"), (-1,), "flatten")
    width = builder.shape(pooled)[0]
    hidden = builder.relu(builder.dense(pooled, rng.normal(size=(width, 5)), rng.normal(size=5) * 0.5, "dense"), "r2")
    network = builder.build(builder.dense(hidden, rng.normal(size=(5, 2)), rng.normal(size=2), "logits"))
    x, eps, steps = np.array([[[[0.45], [0.5]]]]), 0.3, 601
    lower, upper = exact_logit_bounds(network, x, eps)
    axis = np.linspace(0.15, 0.75, steps)
    grid = np.stack(np.meshgrid(axis, axis + 0.05, indexing="ij"), -1).reshape(-1, 1, 2, 1)
    values = forward(network, grid)
    # The L-inf Lipschitz constant of the chain (max pooling and ReLU are 1-Lipschitz) bounds the grid's miss.
    lipschitz = np.prod([abs(matrix).sum(axis=1).max() for matrix, _ in affine_maps(network).values()])
    miss = lipschitz * (axis[1] - axis[0]) / 2
    assert np.all(values.min(0) >= lower.value[0] - 1e-9) and np.all(values.max(0) <= upper.value[0] + 1e-9)
    assert np.all(values.min(0) <= lower.value[0] + miss) and np.all(values.max(0) >= upper.value[0] - miss)
    assert miss < 0.1 * np.ptp(values, axis=0).min()  # the comparison is not vacuous


@pytest.mark.parametrize("geometry,seed", [("2x2_stride2_valid", 3), ("3x3_stride1_same", 4), ("global", 5),
                                           pytest.param("3x2_strides21_same_odd", 6, marks=pytest.mark.slow),
                                           ("stacked", 7), ("on_the_input", 8)])
def test_every_method_encloses_the_exact_margins_and_logits(geometry, seed):
    network = pooled_network(geometry, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (2,) + network.input_shape)
    y = np.argmax(forward(network, x), axis=1)
    eps = 0.08
    exact = exact_margin_bounds(network, x, y, eps)
    finite = np.isfinite(exact.value)
    assert np.all(exact.value[finite] - exact.bound[finite] <= OPTIMALITY)
    logits = np.stack([forward(network, exact.points[n]) for n in range(2)])  # (point, class j, logit)
    attained = logits[np.arange(2), :, y] - np.diagonal(logits, axis1=1, axis2=2)  # f_y - f_j at the j-th point
    np.testing.assert_allclose(attained[finite], exact.value[finite], atol=ATTAINED)
    for method in METHODS:
        certified = margin_bounds(network, x, y, eps, method=method)
        assert np.all(certified[finite] <= exact.value[finite] + 1e-9), (method, certified, exact.value)
    logits_lower, logits_upper = exact_logit_bounds(network, x, eps)
    for method in METHODS:
        lower, upper = bounds(network, x, eps, method=method)
        assert np.all(lower <= logits_lower.value + 1e-9) and np.all(upper >= logits_upper.value - 1e-9), method


@pytest.mark.parametrize("geometry,seed", [("2x2_stride2_valid", 9), ("global", 14), ("overlapping_3x3_stride2", 13),
                                           pytest.param("3x2_strides21_same_odd", 13, marks=pytest.mark.slow)])
def test_verdicts_agree_with_sampling(geometry, seed):
    network = pooled_network(geometry, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (3,) + network.input_shape)
    y = np.argmax(forward(network, x), axis=1)
    statuses = set()
    for eps in (0.02, 0.1, 0.3):
        lower, upper = box_of(x, eps)
        for n, result in enumerate(verify_exact(network, x, y, eps)):
            statuses.add(result.status)
            samples = perturbation_samples(x[n], eps, "linf", (0.0, 1.0), 3000, rng)
            logits = forward(network, samples)
            fooled = bool((np.delete(logits, y[n], axis=1).max(1) > logits[:, y[n]]).any())
            if result.status == "counterexample":
                point = result.counterexample
                assert np.all(point >= lower[n] - 1e-12) and np.all(point <= upper[n] + 1e-12)
                out = forward(network, point[None])[0]
                assert np.delete(out, y[n]).max() > out[y[n]] and result.upper < 0
            else:
                assert not fooled, (eps, n, result)
                assert result.lower <= result.upper + 1e-9
            if result.status == "certified":
                assert result.lower > MARGIN_TOL and not fooled
    assert statuses >= {"certified", "counterexample"}, statuses


@st.composite
def pooled_networks(draw):
    """A random small pooled ReLU net: [conv -> relu] -> max_pool (random pool, strides, padding) -> dense."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    size, channels = draw(st.integers(2, 5)), draw(st.integers(1, 2))
    builder = NetworkBuilder((size, size, channels))
    x = 0
    if draw(st.booleans()):
        kernel = draw(st.integers(1, min(2, size)))
        filters = draw(st.integers(1, 2))
        pads = same_pads(size, kernel, 1) * 2 if draw(st.booleans()) else (0,) * 4
        x = builder.relu(builder.conv2d(x, rng.normal(size=(kernel, kernel, channels, filters)) / kernel,
                                        rng.normal(size=filters) * 0.3, (1, 1), pads, "conv"), "relu")
    h, w, _ = builder.shape(x)
    pool = (draw(st.integers(1, h)), draw(st.integers(1, w)))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    x = builder.max_pool(x, pool, strides, draw(st.sampled_from(["valid", "same"])), "pool")
    x = builder.reshape(x, (-1,), "flatten")
    if draw(st.booleans()):
        width = builder.shape(x)[0]
        x = builder.relu(builder.dense(x, rng.normal(size=(width, 4)) / np.sqrt(width), rng.normal(size=4) * 0.3,
                                       "dense"), "dense_relu")
    return builder.build(builder.dense(x, rng.normal(size=(builder.shape(x)[0], 2)), rng.normal(size=2), "logits"))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=pooled_networks(), eps=st.floats(0.01, 0.4), seed=st.integers(0, 2 ** 31))
def test_fuzz_relaxations_below_milp_minimum_below_samples(network, eps, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((1,) + network.input_shape)
    lower, upper = exact_logit_bounds(network, x, eps)
    # Attained (`value` is the float64 evaluation of the MILP's point) and optimal (the proven bound agrees).
    assert np.all(np.abs(upper.value - upper.bound) <= OPTIMALITY) and np.all(np.abs(lower.bound - lower.value)
                                                                              <= OPTIMALITY)
    for method in METHODS:
        certified_lower, certified_upper = bounds(network, x, eps, method=method)
        assert np.all(certified_lower <= lower.value + 1e-9), (method, certified_lower, lower.value)
        assert np.all(certified_upper >= upper.value - 1e-9), (method, certified_upper, upper.value)
    # The MILP's attained value may sit inside the optimum by the solver's tolerances (its point is clipped
    # into the box): a sampled vertex can exceed it by ~1e-8, never by more than OPTIMALITY.
    values = forward(network, perturbation_samples(x[0], eps, "linf", (0.0, 1.0), 1000, rng))
    assert np.all(values >= lower.value[0] - OPTIMALITY) and np.all(values <= upper.value[0] + OPTIMALITY)


def smooth_network(op):
    rng = np.random.default_rng(0)
    builder = NetworkBuilder((3,))
    hidden = builder.activation(builder.dense(0, rng.normal(size=(3, 4)), rng.normal(size=4), "dense"), op, "act")
    return builder.build(builder.dense(hidden, rng.normal(size=(4, 2)), rng.normal(size=2), "logits"))


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_smooth_activations_are_refused_before_any_bound_is_computed(op, monkeypatch):
    network = smooth_network(op)
    x = np.full((1, 3), 0.5)

    def no_bounds(*args, **kwargs):
        raise AssertionError("bounds were computed before the refusal")

    monkeypatch.setattr(exact_module, "preactivation_bounds", no_bounds)
    monkeypatch.setattr(exact_module.api, "margin_lower_bounds", no_bounds)
    message = f"op '{op}' of node 'act' has no exact MILP encoding; use certified_radius / bounds"
    for call in (lambda: verify_exact(network, x, [0], 0.1), lambda: exact_margin_bounds(network, x, [0], 0.1),
                 lambda: exact_logit_bounds(network, x, 0.1), lambda: affine_maps(network)):
        with pytest.raises(SwtfError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
