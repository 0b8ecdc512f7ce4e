"""Tests of receptive-field patches (`swtf.certify.patches`): the bounds of every neuron of every
convolution, each side as its own row, equal those of the plain path's dense identity-spec passes (as do
`backward_crown.neuron_bounds` rows, one-hot or gathered from the transposed map) to 1e-12, through each
patch rule (convolution with 'same' stride-2 asymmetric padding, 'valid' padding, a convolution straight
after another, per-channel affine, ReLU) and each way a walk ends (the input, a window covering the
feature map, pooling, a full-shape affine), under L-inf boxes and L2 balls, with plain and XLA-fused
elementwise steps; and the plans take the walks computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from swtf.certify import spec as specs
from swtf.certify.backward_crown import neuron_bounds
from swtf.certify.network import NetworkBuilder, same_pads
from swtf.certify.patches import patch_neuron_bounds, patch_plan
from swtf.certify.perturbation import input_set
from swtf.certify.relu_relaxation import relu_relaxation
from swtf.certify.verifier import Verifier


def _conv(b, x, rng, cin, cout, kernel, stride, pads, name):
    return b.conv2d(x, rng.normal(size=(kernel, kernel, cin, cout)) / kernel, rng.normal(size=cout) * 0.3,
                    (stride, stride), pads, name)


def _chain_net(seed):
    """affine (per channel) -> conv 3x3 s2 same (pads 1, 1 / 0, 1) -> conv 3x3 valid (no ReLU between)
    -> relu -> conv 3x3 s1 same (pads 1 all round) -> relu -> affine (per channel) -> conv 3x3 s2 same
    -> relu -> dense."""
    rng = np.random.default_rng(seed)
    b = NetworkBuilder((13, 16, 2))
    x = b.affine(0, rng.uniform(0.5, 2, 2), rng.normal(size=2), "normalize")
    x = _conv(b, x, rng, 2, 3, 3, 2, same_pads(13, 3, 2) + same_pads(16, 3, 2), "c1")  # (7, 8, 3)
    x = b.relu(_conv(b, x, rng, 3, 4, 3, 1, (0, 0, 0, 0), "c2"), "r2")  # (5, 6, 4)
    x = b.relu(_conv(b, x, rng, 4, 4, 3, 1, same_pads(5, 3, 1) + same_pads(6, 3, 1), "c3"), "r3")
    x = b.affine(x, rng.uniform(0.5, 2, (1, 1, 4)), rng.normal(size=4), "scale")
    x = b.relu(_conv(b, x, rng, 4, 5, 3, 2, same_pads(5, 3, 2) + same_pads(6, 3, 2), "c4"), "r4")  # (3, 3, 5)
    x = b.reshape(x, (-1,), "flatten")
    return b.build(b.dense(x, rng.normal(size=(45, 3)), rng.normal(size=3), "logits"))


def _stopping_net(seed):
    """conv -> relu -> full-shape affine -> conv -> relu -> avg_pool -> conv -> relu -> dense: walks end
    at the full-shape affine and at the pooling, continuing densely."""
    rng = np.random.default_rng(seed)
    b = NetworkBuilder((10, 10, 1))
    x = b.relu(_conv(b, 0, rng, 1, 3, 3, 1, same_pads(10, 3, 1) * 2, "c1"), "r1")
    x = b.affine(x, rng.uniform(0.5, 2, (10, 10, 3)), rng.normal(size=(10, 10, 3)), "pixelwise")
    x = b.relu(_conv(b, x, rng, 3, 3, 3, 1, (0, 0, 0, 0), "c2"), "r2")  # (8, 8, 3)
    x = b.avg_pool(x, (2, 2), (2, 2), "valid", "pool")  # (4, 4, 3)
    x = b.relu(_conv(b, x, rng, 3, 4, 2, 1, (0, 0, 0, 0), "c3"), "r3")  # (3, 3, 4)
    x = b.reshape(x, (-1,), "flatten")
    return b.build(b.dense(x, rng.normal(size=(36, 3)), rng.normal(size=3), "logits"))


NETWORKS = {"chain": _chain_net, "stopping": _stopping_net}


def _inputs(network, norm, eps, n=3, seed=0):
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + network.input_shape)
    clip = None if norm == "l2" else (0.0, 1.0)
    return input_set(norm, tf.constant(x), tf.constant(np.full(n, eps)), clip)


def _relaxations_before(verifier, start, inputs):
    """Relaxations of every ReLU before `start`, from the plain path's full-CROWN bounds."""
    relaxations = {}
    for r in verifier.nonlinear_ids:
        if r > start:
            break
        relaxations[r] = relu_relaxation(*verifier.node_bounds(verifier.nodes[r].inputs[0], inputs, relaxations))
    return relaxations


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("norm, eps", [("linf", 0.01), ("linf", 0.3), ("l2", 0.5)])
def test_patch_rows_bound_every_conv_neuron_as_dense_rows_do(name, seed, norm, eps):
    network = NETWORKS[name](seed)
    verifier = Verifier(network, skip_stable=False)
    inputs = _inputs(network, norm, eps)
    planned = 0
    for start, node in enumerate(verifier.nodes):
        plan = patch_plan(verifier.nodes, start)
        if plan is None:
            continue
        planned += 1
        relaxations = _relaxations_before(verifier, start, inputs)
        size = int(np.prod(node.shape))
        rows = tf.constant([(p, i, sign) for p in range(3) for i in range(size) for sign in (1, -1)], tf.int32)
        lower, upper = (b.numpy().reshape(3, -1) for b in verifier.node_bounds(start, inputs, relaxations))
        want = np.array([lower[p, i] if sign > 0 else -upper[p, i] for p, i, sign in rows.numpy()])
        assert np.all(np.isfinite(want))
        for fused in (False, True):  # the plain and the XLA-fused elementwise steps
            for got in (patch_neuron_bounds(verifier.nodes, plan, rows, inputs, relaxations, fused=fused),
                        neuron_bounds(verifier.nodes, start, None, rows, inputs, relaxations, fused=fused),
                        neuron_bounds(verifier.nodes, start, verifier._transposed_map(start), rows, inputs,
                                      relaxations, fused=fused)):
                np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert planned >= 3


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.5)])
def test_verifier_with_patches_gives_the_dense_rows_bounds(name, norm, eps):
    network = NETWORKS[name](0)
    inputs = _inputs(network, norm, eps)
    spec = specs.logit_spec(3, network.output_size, tf.float64)
    for method in ("crown", "alpha-crown"):
        got = Verifier(network).spec_lower_bounds(inputs, spec, method).numpy()
        want = Verifier(network, patch_rows=False).spec_lower_bounds(inputs, spec, method).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_plans_follow_the_receptive_field_computed_by_hand():
    nodes = Verifier(_chain_net(0)).nodes
    # node ids: 1 normalize, 2 c1, 3 c2, 4 r2, 5 c3, 6 r3, 7 scale, 8 c4, 9 r4
    c4 = patch_plan(nodes, 8)  # 3x3 on scale (5, 6); r3, c3 3x3 s1 -> 5x5 on r2; c2 3x3 -> 7x7 on c1 (7, 8)
    assert c4.chain == ((7, (3, 3)), (6, (3, 3)), (5, (3, 3)), (4, (5, 5)), (3, (5, 5)))
    assert (c4.end, c4.end_window) == (2, (7, 7))  # c1's 3x3 s2 would need 15x15 on the 13x16 input
    c2 = patch_plan(nodes, 3)  # 3x3 on c1 (7, 8); c1 3x3 s2 -> 7x7 on normalize, then the input
    assert c2.chain == ((2, (3, 3)), (1, (7, 7))) and (c2.end, c2.end_window) == (0, (7, 7))
    stopping = Verifier(_stopping_net(0)).nodes
    # node ids: 1 c1, 2 r1, 3 pixelwise, 4 c2, 5 r2, 6 pool, 7 c3
    assert patch_plan(stopping, 4).chain == () and patch_plan(stopping, 4).end == 3  # full-shape affine
    assert patch_plan(stopping, 7).chain == () and patch_plan(stopping, 7).end == 6  # pooling
    assert patch_plan(stopping, 2) is None  # not a convolution
