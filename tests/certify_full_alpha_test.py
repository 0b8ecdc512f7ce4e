"""Tests of full alpha-CROWN (`full_alpha_crown`): sampled soundness of the final and intermediate bounds on
ReLU MLPs, a conv net and a max-pool/tanh net under L-inf (clipped) and L2 sets; never looser than CROWN
and, on average, than alpha-CROWN with fixed intermediate bounds, and strictly tighter than it on a deeper
MLP; never above the exact MILP minimum; never looser than auto_LiRPA's alpha-CROWN by more than 1e-4 on
a stored random MLP; one compiled step per input-set type; the memory guard."""

import os

import numpy as np
import pytest
import tensorflow as tf

from swtf.certify import exact_margin_bounds, full_alpha_crown
from swtf.certify.network import NetworkBuilder, forward
from swtf.certify.perturbation import input_set
from swtf.certify.sampling import perturbation_samples
from swtf.certify.spec import margin_spec
from swtf.certify.verifier import Verifier
from swtf.errors import SwtfError

CLIP = (0.0, 1.0)


def _dense(builder, x, size, rng, name):
    fan_in = builder.shape(x)[-1]
    return builder.dense(x, rng.normal(size=(fan_in, size)) / np.sqrt(fan_in), rng.normal(size=size) * 0.1, name)


def _mlp(sizes, seed):
    """A ReLU MLP with layer sizes `sizes` (input first, logits last)."""
    rng = np.random.default_rng(seed)
    builder = NetworkBuilder((sizes[0],))
    x = 0
    for i, size in enumerate(sizes[1:]):
        x = _dense(builder, x, size, rng, f"dense{i}")
        if i < len(sizes) - 2:
            x = builder.relu(x, f"relu{i}")
    return builder.build(x)


def _conv_net(seed):
    """conv 3x3 'same' -> relu -> conv 3x3 stride 2 -> relu -> dense."""
    rng = np.random.default_rng(seed)
    builder = NetworkBuilder((6, 6, 1))
    x = builder.conv2d(0, rng.normal(size=(3, 3, 1, 3)) / 3, rng.normal(size=3) * 0.1, (1, 1), (1, 1, 1, 1), "c1")
    x = builder.relu(x, "r1")
    x = builder.conv2d(x, rng.normal(size=(3, 3, 3, 4)) / 5, rng.normal(size=4) * 0.1, (2, 2), (0, 1, 0, 1), "c2")
    x = builder.relu(x, "r2")
    x = builder.reshape(x, (-1,), "flatten")
    return builder.build(_dense(builder, x, 3, rng, "logits"))


def _pool_tanh_net(seed):
    """conv -> relu -> max_pool -> dense -> tanh -> dense -> relu -> dense."""
    rng = np.random.default_rng(seed)
    builder = NetworkBuilder((6, 6, 1))
    x = builder.conv2d(0, rng.normal(size=(3, 3, 1, 4)) / 3, rng.normal(size=4) * 0.1, (1, 1), (0, 0, 0, 0), "c1")
    x = builder.relu(x, "r1")
    x = builder.max_pool(x, (2, 2), (2, 2), "valid", "pool")
    x = builder.reshape(x, (-1,), "flatten")
    x = builder.activation(_dense(builder, x, 8, rng, "d1"), "tanh", "t1")
    x = builder.relu(_dense(builder, x, 8, rng, "d2"), "r2")
    return builder.build(_dense(builder, x, 3, rng, "logits"))


NETWORKS = {"mlp": lambda: _mlp([6, 16, 16, 16, 3], 0), "conv": lambda: _conv_net(1),
            "pool_tanh": lambda: _pool_tanh_net(2)}
EPS = {("mlp", "linf"): 0.08, ("mlp", "l2"): 0.3, ("conv", "linf"): 0.1, ("conv", "l2"): 0.5,
       ("pool_tanh", "linf"): 0.1, ("pool_tanh", "l2"): 0.5}


def _problem(network, norm, eps, count=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count,) + network.input_shape)
    y = rng.integers(0, network.output_size, count)
    clip = CLIP if norm == "linf" else None
    inputs = input_set(norm, tf.constant(x, tf.float64), tf.constant(np.full(count, eps), tf.float64), clip)
    return x, y, clip, inputs, margin_spec(y, network.output_size, tf.float64)


def _off_label(y, k):
    mask = np.ones((len(y), k), bool)
    mask[np.arange(len(y)), y] = False
    return mask


_CASES = {}


def _case(name, norm):
    """(network, verifier, problem, full alpha-CROWN result, CROWN, fixed alpha-CROWN), computed once."""
    if (name, norm) not in _CASES:
        network = NETWORKS[name]()
        verifier = Verifier(network)
        problem = _problem(network, norm, EPS[name, norm])
        inputs, spec = problem[3], problem[4]
        result = full_alpha_crown.optimized_bounds(verifier, inputs, spec)
        crown = verifier.spec_lower_bounds(inputs, spec, "crown").numpy()
        fixed = verifier.spec_lower_bounds(inputs, spec, "alpha-crown-fixed").numpy()
        _CASES[name, norm] = network, verifier, problem, result, crown, fixed
    return _CASES[name, norm]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_bounds_hold_on_sampled_points(name, norm):
    network, _, (x, y, clip, _, spec), (lower, bounds, _), _, _ = _case(name, norm)
    rng = np.random.default_rng(5)
    spec, lower = spec.numpy(), lower.numpy()
    for n in range(len(x)):
        samples = perturbation_samples(x[n], EPS[name, norm], norm, clip, 3000, rng)
        values = forward(network, samples, return_all=True)
        margins = values[-1] @ spec[n].T  # (samples, S)
        assert np.all(lower[n] <= margins.min(axis=0) + 1e-9)
        for k, (low, up) in bounds.items():
            assert np.all(low.numpy()[n] <= values[k].min(axis=0) + 1e-9)
            assert np.all(up.numpy()[n] >= values[k].max(axis=0) - 1e-9)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_never_looser_than_crown_nor_on_average_than_fixed_alpha_crown(name, norm):
    network, verifier, (_, y, _, inputs, _), (lower, bounds, _), crown, fixed = _case(name, norm)
    mask = _off_label(y, network.output_size)
    lower = lower.numpy()
    assert np.all(lower[mask] >= crown[mask] - 1e-9)
    assert lower[mask].mean() >= fixed[mask].mean() - 1e-9
    reference, _ = verifier.intermediate_bounds(inputs)
    for k, (low, up) in bounds.items():  # the kept intermediate bounds lie inside full CROWN's
        assert np.all(low.numpy() >= reference[k][0].numpy()) and np.all(up.numpy() <= reference[k][1].numpy())


def test_first_iterate_is_crown():
    network, verifier, (_, y, _, inputs, spec), _, crown, _ = _case("mlp", "linf")
    lower, _, _ = full_alpha_crown.optimized_bounds(verifier, inputs, spec, steps=0)
    mask = _off_label(y, network.output_size)
    np.testing.assert_allclose(lower.numpy()[mask], crown[mask], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("norm, eps", [("linf", 0.06), ("l2", 0.25)])
def test_intermediate_slopes_tighten_a_deeper_mlp_beyond_fixed_alpha_crown(norm, eps):
    network = _mlp([8, 24, 24, 24, 24, 4], 3)
    verifier = Verifier(network)
    _, y, _, inputs, spec = _problem(network, norm, eps, count=4, seed=1)
    lower, _, _ = full_alpha_crown.optimized_bounds(verifier, inputs, spec)
    fixed = verifier.spec_lower_bounds(inputs, spec, "alpha-crown-fixed").numpy()
    mask = _off_label(y, network.output_size)
    gain = lower.numpy()[mask] - fixed[mask]
    assert gain.mean() > 1e-3 * np.abs(fixed[mask]).mean()


def test_one_compiled_step_per_input_set_type():
    network, verifier, (_, _, _, inputs, spec), _, _, _ = _case("mlp", "linf")
    full_alpha_crown.optimized_bounds(verifier, inputs, spec, steps=3)
    assert full_alpha_crown._STEPS[verifier].experimental_get_tracing_count() == 1


def test_never_above_the_exact_milp_minimum():
    network = _mlp([4, 10, 10, 3], 4)
    verifier = Verifier(network)
    x, y, clip, inputs, spec = _problem(network, "linf", 0.15, count=3, seed=2)
    lower, _, _ = full_alpha_crown.optimized_bounds(verifier, inputs, spec)
    exact = exact_margin_bounds(network, x, y, 0.15, clip=clip)
    mask = _off_label(y, network.output_size)
    assert np.all(lower.numpy()[mask] <= exact.value[mask] + 1e-9)


def test_too_many_alphas_raise_a_one_line_error(monkeypatch):
    _, verifier, (_, _, _, inputs, spec), _, _, _ = _case("mlp", "linf")
    monkeypatch.setattr(full_alpha_crown, "MAX_ALPHA_ELEMENTS", 100)
    with pytest.raises(SwtfError, match="alpha-crown-fixed") as error:
        full_alpha_crown.optimized_bounds(verifier, inputs, spec)
    assert "\n" not in str(error.value)


def test_as_tight_as_auto_lirpa_alpha_crown_on_a_random_mlp():
    """auto_LiRPA 0.7.1's alpha-CROWN (default options: intermediate bounds optimised too) on a 64-96-96-10
    MLP (tests/reference/make_auto_lirpa_full_alpha.py): CROWN agrees, and full alpha-CROWN is never looser by
    more than 1e-4 (the two optimise differently, so neither is tighter everywhere)."""
    reference = np.load(os.path.join(os.path.dirname(__file__), "reference", "auto_lirpa_full_alpha.npz"))
    builder = NetworkBuilder(reference["w0"].shape[:1])
    x = 0
    for i in range(3):
        x = builder.dense(x, reference[f"w{i}"], reference[f"b{i}"], f"dense{i}")
        if i < 2:
            x = builder.relu(x, f"relu{i}")
    network = builder.build(x)
    verifier = Verifier(network)
    points, y = reference["x"], reference["y"]
    spec, mask = margin_spec(y, 10, tf.float64), _off_label(y, 10)
    for eps in reference["radii"]:
        inputs = input_set("linf", tf.constant(points), tf.constant(np.full(len(y), eps)), CLIP)
        crown = verifier.spec_lower_bounds(inputs, spec, "crown").numpy()
        np.testing.assert_allclose(crown[mask], reference[f"{eps}/CROWN"][mask], atol=1e-6)
        lower, _, _ = full_alpha_crown.optimized_bounds(verifier, inputs, spec)
        assert np.all(lower.numpy()[mask] >= reference[f"{eps}/alpha-CROWN"][mask] - 1e-4)
