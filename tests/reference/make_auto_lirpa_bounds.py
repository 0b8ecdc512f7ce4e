"""Writes auto_lirpa_bounds.npz: small random ReLU networks and auto_LiRPA's IBP, CROWN and CROWN-IBP bounds.

auto_LiRPA (the verifier behind alpha-beta-CROWN) is PyTorch-only and its one PyPI release (0.3) predates
the torch of this machine, so it cannot run in the test suite. This script runs it once, outside swtf's
environment, and stores its bounds with everything needed to rebuild each network in Keras;
`tests/certify_reference_test.py` checks swtf's bounds against them.

Environment (not swtf's): Python 3.11, torch 2.13 (CPU), `pip install --no-deps auto-lirpa==0.3 tqdm`,
and `pip install "numpy<2" packaging appdirs` (auto_LiRPA 0.3 imports numpy.lib.arraysetops, gone in
NumPy 2; the stored file was made with numpy 1.26.4, torch 2.13.0+cpu). Four small incompatibilities of
auto_LiRPA 0.3 with torch 2.13 are patched at run time, below; none touches how a bound is computed
(graph parsing, a keyword argument, a reshape of a non-contiguous view); a fifth patch only caches
auto_LiRPA's sigmoid/tanh tangent tables (computed by its own code, once per function).

    python tests/reference/make_auto_lirpa_bounds.py tests/reference/auto_lirpa_bounds.npz

Networks are given in Keras's layout (NHWC inputs, HWIO kernels, dense kernels (in, out), Flatten in
H, W, C order) and translated to PyTorch here. TF's 'same' padding is asymmetric where the padding is
odd; PyTorch's Conv2d pads symmetrically, so such a convolution gets its padding from a separate 0/1
linear map (the same function; nothing changes for CROWN and L-inf IBP).

L2 bounds are stored only for networks whose first layer is not a padded convolution. Both verifiers
take the first linear layer's bounds over an L2 ball from its weights' norms (auto_LiRPA also under
CROWN), but auto_LiRPA takes each filter's whole L2 norm at every position of a convolution, also
where padding zeros cover part of it, while swtf takes each position's own weights (the exact range);
with a separate padding map, auto_LiRPA's exact range is that of the padding map and IBP goes on from
there. Either way auto_LiRPA's bounds are looser there, by construction.

"nonlinear_cases" (issue 18; read by `tests/certify_reference_nonlinear_test.py`, not by the equality test):
networks with max pooling, sigmoid and tanh (NONLINEAR_ARCHITECTURES), L-inf boxes of NONLINEAR_RADII, the
same three methods. Their relaxations differ from swtf's by design (sigmoid/tanh tangent points read off a
0.01 grid), so the test compares them for tightness. What auto_LiRPA 0.3 supports there: max pooling only
with stride == pool size and no padding (BoundMaxPool.bound_backward raises otherwise; a pool that does not
tile its map goes through an F.pad branch that was not tried), so every pool here is 'valid' 2x2 or 3x3 on a map it tiles;
'same' or overlapping pools are not compared. Every other combination ran: IBP, CROWN and CROWN-IBP on
every network and radius, nothing failed (a case's "failed" list would record it). Each stored bound was
checked against the PyTorch twin's outputs at SAMPLES points of each box (half uniform, half vertices):
auto_LiRPA was sound on all of them.
"""

import json
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)

# --- auto_LiRPA 0.3 on torch 2.13 -------------------------------------------------------------------
import torch.onnx.symbolic_helper  # noqa: E402


def _set_opset_version(version):
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    GLOBALS.export_onnx_opset_version = version


torch.onnx.symbolic_helper._set_opset_version = _set_opset_version
torch._C.Node.__getitem__ = lambda node, name: getattr(node, node.kindOf(name))(name)
_view = torch.Tensor.view


def _view_or_reshape(tensor, *shape):  # auto_LiRPA's pooling views a permuted (non-contiguous) tensor
    return _view(tensor, *shape) if tensor.is_contiguous() else tensor.reshape(*shape)


from auto_LiRPA import BoundedModule, BoundedTensor  # noqa: E402
from auto_LiRPA.bound_general import BoundedModule as _Module  # noqa: E402
from auto_LiRPA.perturbations import PerturbationLpNorm  # noqa: E402

_named_members = _Module._named_members
_Module._named_members = lambda self, fn, prefix="", recurse=True, **_: _named_members(self, fn, prefix, recurse)

# Not a torch incompatibility: every BoundSigmoid/BoundTanh recomputes its tangent-point tables (50,000 grid
# points, 200 bisection steps) when a BoundedModule is built, about 2 minutes each on this CPU; the tables
# depend only on the function, so each is computed once (by auto_LiRPA's own code) and reused.
from auto_LiRPA.operators.activation import BoundTanh  # noqa: E402

_precompute_relaxation, _TABLES = BoundTanh.precompute_relaxation, {}


def _cached_precompute_relaxation(self, name, func, dfunc, x_limit=500):
    if (name, x_limit) not in _TABLES:
        _precompute_relaxation(self, name, func, dfunc, x_limit)
        _TABLES[name, x_limit] = (self.step_pre, self.num_points_pre, self.d_lower, self.d_upper)
    self.x_limit = x_limit
    self.step_pre, self.num_points_pre, self.d_lower, self.d_upper = _TABLES[name, x_limit]


BoundTanh.precompute_relaxation = _cached_precompute_relaxation
# ---------------------------------------------------------------------------------------------------

ARCHITECTURES = {
    "dense": ((4, 4, 1), [["flatten"], ["dense", 16], ["relu"], ["dense", 16], ["relu"], ["dense", 5]]),
    "conv_valid": ((8, 8, 2), [["conv", 4, 3, 1, "valid"], ["relu"], ["conv", 4, 3, 2, "same"], ["relu"],
                               ["flatten"], ["dense", 10], ["relu"], ["dense", 3]]),
    "conv_same_s2": ((8, 8, 1), [["conv", 3, 3, 2, "same"], ["relu"], ["conv", 5, 2, 2, "same"], ["relu"],
                                 ["flatten"], ["dense", 4]]),
    "conv_odd": ((7, 7, 2), [["conv", 3, 4, 2, "same"], ["relu"], ["conv", 4, 3, 1, "same"], ["relu"], ["flatten"],
                             ["dense", 8], ["relu"], ["dense", 3]]),
    "bn_avgpool": ((8, 8, 1), [["conv", 4, 3, 1, "same"], ["bn"], ["relu"], ["avgpool", 2], ["conv", 4, 3, 1, "valid"],
                               ["relu"], ["flatten"], ["dense", 6], ["relu"], ["dense", 3]]),
    "convex_like": ((12, 12, 1), [["conv", 4, 3, 1, "same"], ["relu"], ["conv", 4, 4, 2, "same"], ["relu"],
                                  ["conv", 8, 3, 1, "same"], ["relu"], ["conv", 8, 4, 2, "same"], ["relu"],
                                  ["flatten"], ["dense", 20], ["relu"], ["dense", 10]]),
    "deep_valid_first": ((12, 12, 1), [["conv", 4, 3, 1, "valid"], ["relu"], ["conv", 4, 4, 2, "same"], ["relu"],
                                       ["conv", 8, 3, 1, "same"], ["relu"], ["flatten"], ["dense", 20], ["relu"],
                                       ["dense", 10]]),
    "residual": ((6, 6, 2), [["conv", 3, 3, 1, "valid"], ["relu"], ["skip_conv", 3], ["relu"], ["skip_conv", 3],
                             ["relu"], ["avgpool", 2], ["flatten"], ["dense", 4]]),
}
# Max pooling, sigmoid and tanh (issue 18), stored apart (`nonlinear_cases`): swtf's CROWN is compared with
# auto_LiRPA's for tightness there, not for equality (see the module docstring). auto_LiRPA 0.3 bounds max
# pooling only with stride == pool size and no padding, so every pool here is 'valid' on a map its size divides.
NONLINEAR_ARCHITECTURES = {
    "maxpool_dense": ((10, 10, 2), [["conv", 4, 3, 1, "valid"], ["relu"], ["maxpool", 2], ["flatten"], ["dense", 10],
                                    ["relu"], ["dense", 3]]),
    "conv_conv_maxpool": ((10, 10, 1), [["conv", 4, 3, 1, "valid"], ["relu"], ["conv", 6, 3, 1, "same"], ["relu"],
                                        ["maxpool", 2], ["flatten"], ["dense", 4]]),
    "maxpool3": ((9, 9, 1), [["conv", 4, 3, 1, "same"], ["relu"], ["maxpool", 3], ["flatten"], ["dense", 8], ["relu"],
                             ["dense", 3]]),
    "conv_maxpool_relu": ((8, 8, 2), [["conv", 4, 3, 1, "same"], ["maxpool", 2], ["relu"], ["conv", 4, 3, 1, "valid"],
                                      ["relu"], ["flatten"], ["dense", 3]]),
    "mlp_sigmoid": ((4, 4, 1), [["flatten"], ["dense", 16], ["sigmoid"], ["dense", 16], ["sigmoid"], ["dense", 5]]),
    "mlp_tanh": ((4, 4, 1), [["flatten"], ["dense", 16], ["tanh"], ["dense", 16], ["tanh"], ["dense", 5]]),
    "cnn_sigmoid": ((8, 8, 1), [["conv", 4, 3, 2, "same"], ["sigmoid"], ["conv", 6, 3, 1, "valid"], ["sigmoid"],
                                ["flatten"], ["dense", 8], ["sigmoid"], ["dense", 3]]),
    "cnn_tanh": ((8, 8, 1), [["conv", 4, 3, 2, "same"], ["tanh"], ["conv", 6, 3, 1, "valid"], ["tanh"], ["flatten"],
                             ["dense", 8], ["tanh"], ["dense", 3]]),
    "mixed_relu_tanh": ((6, 6, 1), [["conv", 4, 3, 1, "valid"], ["relu"], ["flatten"], ["dense", 12], ["tanh"],
                                    ["dense", 8], ["relu"], ["dense", 3]]),
    "tanh_maxpool": ((8, 8, 1), [["conv", 4, 3, 1, "same"], ["tanh"], ["maxpool", 2], ["flatten"], ["dense", 6],
                                 ["sigmoid"], ["dense", 3]]),
}
NONLINEAR_RADII = (("linf", 0.005), ("linf", 0.02), ("linf", 0.08))
# Points per network at which the stored bounds were checked against sampled outputs (below).
SAMPLES = 4000
SEEDS = (0, 1)
POINTS = 3
RADII = (("linf", 0.02), ("linf", 0.08), ("l2", 0.3), ("l2", 1.0))
METHODS = {"ibp": "IBP", "crown": "CROWN", "crown-ibp": "CROWN-IBP"}
# By default auto_LiRPA bounds a ReLU input neuron by CROWN only if it is unstable under an interval
# reference (IBP from the bounds already computed) in some point of the batch, and keeps the reference
# for the others, unless more than 90% of the layer is unstable; a neuron stable by that reference but
# not by CROWN then gets a tighter relaxation than full CROWN's, and the bounds of a point depend on
# the other points of its batch. swtf computes full CROWN, CROWN bounds for every intermediate neuron
# (as DeepPoly does), which is auto_LiRPA with these options.
TEXTBOOK_CROWN = {"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False}


def same_padding(size, kernel, stride):
    """TF's (before, after) padding of one axis under 'same'. Written here again on purpose: the reference
    must not inherit a mistake of swtf's own `certify.network.same_pads` (nor can it import TF)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def random_weights(layers, input_shape, rng):
    """Keras-layout weights, He-scaled and 1.5x larger, random biases and BN statistics (many unstable ReLUs)."""
    h, w, c = input_shape
    features, weights = None, []
    for layer in layers:
        if layer[0] == "conv":
            filters, k, s, padding = layer[1:]
            weights += [rng.normal(0, 1.5 * np.sqrt(2 / (k * k * c)), (k, k, c, filters)), rng.normal(0, 0.1, filters)]
            if padding == "same":
                h, w = -(-h // s), -(-w // s)
            else:
                h, w = (h - k) // s + 1, (w - k) // s + 1
            c = filters
        elif layer[0] == "skip_conv":
            weights += [rng.normal(0, 1.5 * np.sqrt(2 / (layer[1] * layer[1] * c)), (layer[1], layer[1], c, c)),
                        rng.normal(0, 0.1, c)]
        elif layer[0] in ("avgpool", "maxpool"):
            h, w = h // layer[1], w // layer[1]
        elif layer[0] == "bn":
            weights += [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c), rng.uniform(0.5, 2, c)]
        elif layer[0] == "flatten":
            features = h * w * c
        elif layer[0] == "dense":
            weights += [rng.normal(0, 1.5 * np.sqrt(2 / features), (features, layer[1])), rng.normal(0, 0.1, layer[1])]
            features = layer[1]
    return [v.astype(np.float32) for v in weights]


class LinearPad(nn.Module):
    """Zero padding (top, bottom, left, right) of a (c, h, w) map as a 0/1 linear map."""

    def __init__(self, c, h, w, top, bottom, left, right):
        super().__init__()
        self.out_shape = (c, h + top + bottom, w + left + right)
        padded = torch.full(self.out_shape, -1, dtype=torch.long)
        padded[:, top:top + h, left:left + w] = torch.arange(c * h * w).reshape(c, h, w)
        rows = torch.nonzero(padded.flatten() >= 0).flatten()
        matrix = torch.zeros(padded.numel(), c * h * w)
        matrix[rows, padded.flatten()[rows]] = 1.0
        self.linear = nn.Linear(c * h * w, padded.numel())
        self.linear.weight.data, self.linear.bias.data = matrix, torch.zeros(padded.numel())

    def forward(self, x):
        return self.linear(x.flatten(1)).view(-1, *self.out_shape)


class SkipConv(nn.Module):
    """x + conv(x), a 'same' convolution of odd kernel keeping the channels (a residual connection)."""

    def __init__(self, kernel, bias):
        super().__init__()
        self.conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0], padding=kernel.shape[0] // 2)
        self.conv.weight.data, self.conv.bias.data = kernel.permute(3, 2, 0, 1).contiguous(), bias

    def forward(self, x):
        return x + self.conv(x)


class FlattenHWC(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


def torch_network(layers, input_shape, weights):
    """The PyTorch twin of the Keras network; also whether its first layer is a padded convolution."""
    h, w, c = input_shape
    modules, params, padded_first = [], iter(torch.tensor(v.astype(np.float64)) for v in weights), None
    for layer in layers:
        if layer[0] == "conv":
            filters, k, s, padding = layer[1:]
            (top, bottom), (left, right) = ((same_padding(h, k, s), same_padding(w, k, s)) if padding == "same"
                                            else ((0, 0), (0, 0)))
            symmetric = top == bottom and left == right
            padded_first = top + bottom + left + right > 0 if padded_first is None else padded_first
            if not symmetric:
                modules.append(LinearPad(c, h, w, top, bottom, left, right))
                h, w = h + top + bottom, w + left + right
            conv = nn.Conv2d(c, filters, k, stride=s, padding=(top, left) if symmetric else 0)
            conv.weight.data, conv.bias.data = next(params).permute(3, 2, 0, 1).contiguous(), next(params)
            modules.append(conv)
            pad_h, pad_w = (2 * top, 2 * left) if symmetric else (0, 0)
            h, w, c = (h + pad_h - k) // s + 1, (w + pad_w - k) // s + 1, filters
        elif layer[0] == "dense":
            kernel, bias = next(params), next(params)
            linear = nn.Linear(*kernel.shape)
            linear.weight.data, linear.bias.data = kernel.T.contiguous(), bias
            modules.append(linear)
        elif layer[0] == "skip_conv":
            modules.append(SkipConv(next(params), next(params)))
        elif layer[0] == "relu":
            modules.append(nn.ReLU())
        elif layer[0] == "sigmoid":
            modules.append(nn.Sigmoid())
        elif layer[0] == "tanh":
            modules.append(nn.Tanh())
        elif layer[0] == "maxpool":
            assert h % layer[1] == 0 and w % layer[1] == 0, "auto_LiRPA 0.3: a pool must tile its map"
            modules.append(nn.MaxPool2d(layer[1]))
            h, w = h // layer[1], w // layer[1]
        elif layer[0] == "flatten":
            modules.append(FlattenHWC())
        elif layer[0] == "avgpool":
            modules.append(nn.AvgPool2d(layer[1]))
            h, w = h // layer[1], w // layer[1]
        elif layer[0] == "bn":
            bn = nn.BatchNorm2d(c, eps=1e-3)
            bn.weight.data, bn.bias.data, bn.running_mean.data, bn.running_var.data = (next(params) for _ in range(4))
            modules.append(bn)
    return nn.Sequential(*modules).eval(), bool(padded_first)


def lirpa_bounds(network, x_nhwc, norm, eps, method):
    x = torch.tensor(x_nhwc.transpose(0, 3, 1, 2))
    model = BoundedModule(network, torch.zeros_like(x), device="cpu", verbose=False, bound_opts=TEXTBOOK_CROWN)
    if norm == "linf":
        perturbation = PerturbationLpNorm(norm=np.inf, eps=eps, x_L=(x - eps).clamp(0, 1), x_U=(x + eps).clamp(0, 1))
    else:
        perturbation = PerturbationLpNorm(norm=2, eps=eps)
    torch.Tensor.view = _view_or_reshape
    try:
        lower, upper = model.compute_bounds(x=(BoundedTensor(x, perturbation),), method=method)
    finally:
        torch.Tensor.view = _view
    return lower.detach().numpy(), upper.detach().numpy()


def sampled_outputs(network, x_nhwc, eps, rng):
    """(POINTS, SAMPLES, outputs) outputs at points of each point's box [x - eps, x + eps] clipped to [0, 1]:
    half uniform in the box, half at random vertices of it (where ReLU and max-pool networks are extreme
    more often)."""
    lower, upper = np.clip(x_nhwc - eps, 0, 1), np.clip(x_nhwc + eps, 0, 1)
    shape = (x_nhwc.shape[0], SAMPLES) + x_nhwc.shape[1:]
    t = rng.uniform(0, 1, shape)
    t[:, SAMPLES // 2:] = np.round(t[:, SAMPLES // 2:])
    points = lower[:, None] + t * (upper - lower)[:, None]
    with torch.no_grad():
        flat = torch.tensor(points.reshape((-1,) + x_nhwc.shape[1:]).transpose(0, 3, 1, 2))
        return network(flat).numpy().reshape(shape[:2] + (-1,))


def add_case(arrays, cases, name, seed, input_shape, layers, radii, sample_check=False):
    """Rebuilds network `name` of `seed`, stores its weights, points, logits and auto_LiRPA's bounds for
    `radii` and METHODS into `arrays` and its description into `cases`. With `sample_check`, every bound
    is also checked against sampled outputs (auto_LiRPA's own soundness there), and a combination auto_LiRPA
    fails on is recorded in the case's "failed" list instead of stopping the run."""
    rng = np.random.default_rng(seed)
    key = f"{name}_{seed}"
    weights = random_weights(layers, input_shape, rng)
    x = rng.uniform(0, 1, (POINTS,) + input_shape)
    network, padded_first = torch_network(layers, input_shape, weights)
    with torch.no_grad():  # the twin computes the same function (checked again in Keras by the test)
        logits = network(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    arrays.update({f"{key}/x": x, f"{key}/logits": logits})
    arrays.update({f"{key}/w{i}": v for i, v in enumerate(weights)})
    entries, failed = [], []
    for norm, eps in radii:
        samples = sampled_outputs(network, x, eps, np.random.default_rng(1000 + seed)) if sample_check else None
        for method, lirpa_method in METHODS.items():
            if norm == "l2" and padded_first:
                continue  # see the module docstring
            try:
                lower, upper = lirpa_bounds(network, x, norm, eps, lirpa_method)
            except Exception as error:  # noqa: BLE001 (recorded, see the docstring)
                if not sample_check:
                    raise
                failed.append([norm, eps, method, f"{type(error).__name__}: {error}"[:200]])
                print(key, norm, eps, method, "FAILED", failed[-1][-1])
                continue
            if samples is not None:
                below = np.max(lower[:, None] - samples)
                above = np.max(samples - upper[:, None])
                if max(below, above) > 1e-9:
                    print(key, norm, eps, method, f"auto_LiRPA UNSOUND by {max(below, above):.3g}")
                    failed.append([norm, eps, method, f"unsound by {max(below, above):.3g}"])
            arrays[f"{key}/{norm}/{eps}/{method}/lower"] = lower
            arrays[f"{key}/{norm}/{eps}/{method}/upper"] = upper
            entries.append([norm, eps, method])
    case = {"key": key, "input_shape": list(input_shape), "layers": layers, "weights": len(weights),
            "entries": entries}
    if sample_check:
        case["failed"] = failed
    cases.append(case)
    print(key, len(entries), "bound entries")


def main(path):
    arrays, cases, nonlinear_cases = {}, [], []
    for name, (input_shape, layers) in ARCHITECTURES.items():
        for seed in SEEDS:
            add_case(arrays, cases, name, seed, input_shape, layers, RADII)
    for name, (input_shape, layers) in NONLINEAR_ARCHITECTURES.items():
        for seed in SEEDS:
            add_case(arrays, nonlinear_cases, name, seed, input_shape, layers, NONLINEAR_RADII, sample_check=True)
    arrays["cases"] = np.array(json.dumps(cases))
    arrays["nonlinear_cases"] = np.array(json.dumps(nonlinear_cases))
    arrays["versions"] = np.array(json.dumps({"torch": torch.__version__, "auto_LiRPA": "0.3"}))
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
