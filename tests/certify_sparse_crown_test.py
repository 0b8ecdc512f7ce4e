"""Tests of full CROWN on undecided neurons only (`sparse_crown`, `Verifier(skip_stable=True)`): the
enclosure contains plain full CROWN's bounds of every ReLU input, and the bounds of every method equal
those of the plain path (every neuron bounded) to 1e-9 on conv nets with strides, padding, residual
additions, average pooling and affine layers, under L-inf and L2."""

import math

import numpy as np
import pytest
import tensorflow as tf

from swtf import models
from swtf.certify import as_network
from swtf.certify import spec as specs
from swtf.certify import verifier as verifier_module
from swtf.certify.network import NetworkBuilder, forward, same_pads
from swtf.certify.perturbation import LinfBox, input_set
from swtf.certify.relu_relaxation import relu_relaxation
from swtf.certify.sampling import perturbation_samples
from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.sparse_crown import crown_enclosure, undecided_neurons
from swtf.certify.verifier import CHUNK_ELEMENTS, Verifier, _bucket, _chunk_width, _early_stop


def _residual_net(seed):
    """affine -> conv (stride 2, same) -> relu -> residual conv block -> avg_pool -> dense -> relu -> logits."""
    rng = np.random.default_rng(seed)
    b = NetworkBuilder((6, 6, 2))
    x = b.affine(0, rng.uniform(0.5, 2, 2), rng.normal(size=2), "affine")
    x = b.relu(b.conv2d(x, rng.normal(size=(3, 3, 2, 4)) / 3, rng.normal(size=4) * 0.3, (2, 2),
                        same_pads(6, 3, 2) * 2, "conv"), "relu")
    branch = b.relu(b.conv2d(x, rng.normal(size=(3, 3, 4, 4)) / 3, rng.normal(size=4) * 0.3, (1, 1),
                             same_pads(3, 3, 1) * 2, "res"), "res_relu")
    x = b.avg_pool(b.add(x, branch, "add"), (2, 2), (1, 1), "valid", "pool")
    x = b.reshape(x, (-1,), "flatten")
    x = b.relu(b.dense(x, rng.normal(size=(16, 8)) / 4, rng.normal(size=8) * 0.3, "dense"), "dense_relu")
    return b.build(b.dense(x, rng.normal(size=(8, 3)), rng.normal(size=3), "logits"))


def _convex_cnn(seed):
    model = models.build("convex_cnn", (8, 8, 1), 10, filters=[8, 8, 16], kernel_size=[3, 4, 3],
                         strides=[1, 2, 1], dense=[32], seed=seed)
    return as_network(model)


def _digits_teacher_shape():
    model = models.build("convex_cnn", (8, 8, 1), 10, filters=[32, 32, 64, 64], kernel_size=[3, 4, 3, 4],
                         strides=[1, 2, 1, 2], dense=[256], seed=0)
    return as_network(model)


NETWORKS = {"residual": lambda: _residual_net(0), "residual_1": lambda: _residual_net(1),
            "convex_cnn": lambda: _convex_cnn(0), "digits_teacher": _digits_teacher_shape}


def _inputs(network, norm, eps, n=3, seed=0):
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + network.input_shape)
    clip = None if norm == "l2" else (0.0, 1.0)
    return x, input_set(norm, tf.constant(x), tf.constant(np.full(n, eps)), clip)


def _relative_gap(a, b):
    return float(np.max(np.abs(a - b) / (1.0 + np.abs(b))))


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("norm, eps", [("linf", 0.005), ("linf", 0.05), ("l2", 0.1)])
def test_skipping_stable_neurons_gives_the_plain_full_crown_bounds(name, norm, eps):
    network = NETWORKS[name]()
    _, inputs = _inputs(network, norm, eps)
    k = network.output_size
    spec = specs.logit_spec(3, k, tf.float64)
    methods = ("crown", "alpha-crown") if name != "digits_teacher" else ("crown",)
    fast, plain = Verifier(network), Verifier(network, skip_stable=False)
    for method in methods:
        got = fast.spec_lower_bounds(inputs, spec, method).numpy()
        want = plain.spec_lower_bounds(inputs, spec, method).numpy()
        assert np.all(np.isfinite(want))
        assert _relative_gap(got, want) < 1e-9, method


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("norm, eps", [("linf", 0.02), ("linf", 0.2), ("l2", 0.5)])
def test_enclosure_contains_full_crown_bounds_of_every_relu_input(name, norm, eps):
    """The enclosure is computed from the plain path's own bounds, then checked against its next node
    (up to the two sides' outward rounding margins, 1e-9 relative each)."""
    network = NETWORKS[name]()
    _, inputs = _inputs(network, norm, eps)
    plain = Verifier(network, skip_stable=False)
    relaxations, known = {}, {}
    boxes = plain.interval_bounds(inputs) if norm == "linf" else None
    if boxes is not None:  # as `crown_relaxations` does: exact interval bounds of the first affine layers
        known = {k: boxes[k] for k in plain._interval_exact}
    for r in plain.nonlinear_ids:
        k = network.nodes[r].inputs[0]
        if k not in known:
            lower, upper = (b.numpy() for b in plain.node_bounds(k, inputs, relaxations))
            enc_lower, enc_upper = (b.numpy() for b in crown_enclosure(plain.nodes, k, inputs, known, relaxations))
            slack = 1e-8 * (1 + np.abs(lower) + np.abs(upper))
            assert np.all(enc_lower <= lower + slack) and np.all(enc_upper >= upper - slack)
            known[k] = (tf.constant(lower), tf.constant(upper))
        relaxations[r] = relu_relaxation(*known[k])


@pytest.mark.parametrize("name", ["convex_cnn", "digits_teacher"])
@pytest.mark.parametrize("norm, eps", [("linf", 0.01), ("linf", 0.05), ("l2", 0.05)])
def test_early_stop_decides_rows_soundly_and_keeps_full_crown_relaxations(name, norm, eps):
    """Rows stopped at the second ReLU back: every such bound is at most the row's full CROWN bound and
    holds for sampled points; some rows are decided there (the stop is not idle); relaxations and final
    bounds equal those without the early stop."""
    network = NETWORKS[name]()
    x, inputs = _inputs(network, norm, eps)
    early, full = Verifier(network), Verifier(network, early_stop=False)
    clip = None if norm == "l2" else (0.0, 1.0)
    samples = np.concatenate([perturbation_samples(x[i], eps, norm, clip, 200, np.random.default_rng(i))
                              for i in range(len(x))])
    values = forward(network, samples, return_all=True)
    relaxations, known = {}, {}
    if norm == "linf":
        known = {k: early.interval_bounds(inputs)[k] for k in early._interval_exact}
    decided = stopped = 0
    for r in early.nonlinear_ids:
        k = network.nodes[r].inputs[0]
        stop = early._early_stops[k]
        if k not in known and stop:
            lower, upper = crown_enclosure(early.nodes, k, inputs, known, relaxations)
            pairs = undecided_neurons(lower, upper)
            rows = tf.concat([pairs, tf.ones_like(pairs[:, :1])], 1)
            rows = tf.concat([rows, rows * [1, 1, -1]], 0)
            box = LinfBox(*NONLINEAR_RULES["relu"].output_box(relaxations[stop], *known[network.nodes[stop].inputs[0]]))
            stopped_bounds = early._chunked_row_bounds(k, rows, box, relaxations, stop).numpy()
            crown = early._chunked_row_bounds(k, rows, inputs, relaxations).numpy()
            assert np.all(stopped_bounds <= crown + 1e-9)
            decided += int(np.sum(stopped_bounds >= 0))
            stopped += len(rows)
            # each row bounds sign * z[point, index] from below at every sample of its point
            flat = values[k].reshape(len(x), 200, -1)
            points, index, sign = (rows[:, i].numpy() for i in range(3))
            sampled = sign[:, None] * flat[points, :, index]
            assert np.all(sampled >= stopped_bounds[:, None] - 1e-9)
        if k not in known:
            known[k] = early.undecided_node_bounds(k, inputs, known, relaxations)
        relaxations[r] = relu_relaxation(*known[k])
    assert stopped and 0 < decided
    want = full.crown_relaxations(inputs)
    for r, relaxation in early.crown_relaxations(inputs).items():
        for got_part, want_part in zip(relaxation, want[r]):
            np.testing.assert_allclose(np.asarray(got_part, float), np.asarray(want_part, float), atol=1e-9)
    spec = specs.logit_spec(3, network.output_size, tf.float64)
    assert _relative_gap(early.spec_lower_bounds(inputs, spec).numpy(),
                         full.spec_lower_bounds(inputs, spec).numpy()) < 1e-9


def test_early_stop_is_the_second_relu_back_on_a_single_input_chain():
    convex = _convex_cnn(0)  # conv relu conv relu conv relu flatten dense relu dense
    relus = [i for i, node in enumerate(convex.nodes) if node.op == "relu"]
    dense = convex.nodes[relus[-1]].inputs[0]
    assert _early_stop(convex.nodes, dense) == relus[-3]  # passes relus[-2], stops at the next one
    assert _early_stop(convex.nodes, convex.nodes[relus[1]].inputs[0]) == 0  # conv2: one ReLU back
    assert _early_stop(convex.nodes, convex.nodes[relus[2]].inputs[0]) == relus[0]
    residual = _residual_net(0)  # the dense layer reads an addition: no single cut below it
    dense = [i for i, node in enumerate(residual.nodes) if node.name == "dense"][0]
    assert _early_stop(residual.nodes, dense) == 0


@pytest.mark.parametrize("norm, eps", [("linf", 0.02), ("l2", 0.3)])
def test_fused_rows_give_the_same_bounds_and_are_the_default_on_large_networks(norm, eps):
    small, large = _convex_cnn(0), _digits_teacher_shape()
    assert not Verifier(small).fused and Verifier(large).fused
    _, inputs = _inputs(small, norm, eps)
    spec = specs.logit_spec(3, small.output_size, tf.float64)
    fused = Verifier(small, fused=True)
    got = fused.spec_lower_bounds(inputs, spec).numpy()
    assert fused._neurons  # rows were bounded
    assert _relative_gap(got, Verifier(small, fused=False).spec_lower_bounds(inputs, spec).numpy()) < 1e-12


def test_fused_rows_keep_one_shape_per_node(monkeypatch):
    """XLA compiles a kernel per shape, so fused rows go in full-width chunks with the points padded to the
    most the verifier has seen, and the rows left over take the unfused path: a later call with fewer
    points compiles no new fused kernel, and every call gives the unfused bounds."""
    monkeypatch.setattr(verifier_module, "CHUNK_ELEMENTS", 2 ** 12)  # chunks of a few rows on this small net
    network = _convex_cnn(0)
    fused, plain = Verifier(network, fused=True), Verifier(network, fused=False)
    _, inputs = _inputs(network, "linf", 0.05, n=5)
    spec = specs.logit_spec(5, network.output_size, tf.float64)
    assert _relative_gap(fused.spec_lower_bounds(inputs, spec).numpy(),
                         plain.spec_lower_bounds(inputs, spec).numpy()) < 1e-12
    traces = {key: f.experimental_get_tracing_count() for key, f in fused._neurons.items() if key[2]}
    assert traces and any(not key[2] for key in fused._neurons) and fused._points_bucket == 5
    fewer = type(inputs)(*(t[:3] for t in inputs))
    assert _relative_gap(fused.spec_lower_bounds(fewer, spec[:3]).numpy(),
                         plain.spec_lower_bounds(fewer, spec[:3]).numpy()) < 1e-12
    assert {key: f.experimental_get_tracing_count() for key, f in fused._neurons.items() if key[2]} == traces


def test_point_buckets_are_the_smallest_of_few_widths():
    assert [_bucket(n) for n in (1, 2, 3, 5, 6, 7, 9, 33, 100)] == [1, 2, 3, 5, 6, 7, 10, 40, 112]


def test_crown_can_be_looser_than_interval_arithmetic_from_the_previous_bounds():
    """Why the enclosure widens unstable neurons with lower slope 1 to [l, u]: with the IBP box
    [relu(l), relu(u)] (auto_LiRPA's reference for skipping), some full-CROWN lower bounds fall below it,
    so skipping neurons stable under that reference would change the bounds."""
    network = _convex_cnn(0)
    _, inputs = _inputs(network, "linf", 0.2)
    plain = Verifier(network, skip_stable=False)
    boxes = plain.interval_bounds(inputs)
    known = {k: boxes[k] for k in plain._interval_exact}
    relaxations, below = {}, 0
    for r in plain.nonlinear_ids:
        k = network.nodes[r].inputs[0]
        if k not in known:
            lower, upper = plain.node_bounds(k, inputs, relaxations)
            ibp_like = {i: rel._replace(lower_slope=tf.cast(known[network.nodes[i].inputs[0]][0] >= 0, tf.float64))
                        for i, rel in relaxations.items()}
            reference, _ = crown_enclosure(plain.nodes, k, inputs, known, ibp_like)
            below += int(np.sum(lower.numpy() < reference.numpy() - 1e-6))
            known[k] = (lower, upper)
        relaxations[r] = relu_relaxation(*known[k])
    assert below > 0


def test_small_radius_bounds_only_a_few_neurons():
    network = _digits_teacher_shape()
    _, inputs = _inputs(network, "linf", 1e-4)
    verifier = Verifier(network)
    relaxations, known = {}, {k: b for k, b in ((k, verifier.interval_bounds(inputs)[k])
                                               for k in verifier._interval_exact)}
    undecided = []
    for r in verifier.nonlinear_ids:
        k = network.nodes[r].inputs[0]
        if k not in known:
            enc = crown_enclosure(verifier.nodes, k, inputs, known, relaxations)
            undecided.append(int(undecided_neurons(*enc).shape[0]) / 3)  # pairs per point
            known[k] = verifier.undecided_node_bounds(k, inputs, known, relaxations)
        relaxations[r] = relu_relaxation(*known[k])
    sizes = [int(np.prod(network.nodes[network.nodes[r].inputs[0]].shape)) for r in verifier.nonlinear_ids[1:]]
    assert sum(undecided) < 0.2 * sum(sizes), (undecided, sizes)


def test_repeated_calls_compile_a_bounded_number_of_graphs():
    """Each start node compiles one graph per chunk width it meets (a few per octave of row counts), and
    calls that meet the same widths again compile nothing more."""
    network = _convex_cnn(0)
    verifier = Verifier(network)
    spec = specs.logit_spec(3, 10, tf.float64)
    radii = np.linspace(0.001, 0.1, 12)
    for eps in radii:
        verifier.spec_lower_bounds(_inputs(network, "linf", eps)[1], spec, "crown")
    traced = {start: function.experimental_get_tracing_count() for start, function in verifier._neurons.items()}
    for eps in radii:
        verifier.spec_lower_bounds(_inputs(network, "linf", eps)[1], spec, "crown")
    for start, function in verifier._neurons.items():
        largest = CHUNK_ELEMENTS // verifier._row_elements(start[0])
        assert function.experimental_get_tracing_count() == traced[start] <= 4 * math.log2(largest) + 1, start


@pytest.mark.parametrize("count, largest, width", [(1012, 1, 1), (40, 512, 40), (524, 512, 320), (975, 12, 12),
                                                   (1024, 102, 96)])
def test_chunk_width_uses_fewest_chunks_and_little_padding(count, largest, width):
    assert _chunk_width(count, largest) == width
