"""Writes auto_lirpa_bounds.npz: small random ReLU networks and auto_LiRPA's IBP, CROWN and CROWN-IBP bounds.

auto_LiRPA (the verifier behind alpha-beta-CROWN) is PyTorch-only and its one PyPI release (0.3) predates
the torch of this machine, so it cannot run in the test suite. This script runs it once, outside swtf's
environment, and stores its bounds with everything needed to rebuild each network in Keras;
`tests/certify_reference_test.py` checks swtf's bounds against them.

Environment (not swtf's): Python 3.11, torch 2.13 (CPU), `pip install --no-deps auto-lirpa==0.3 tqdm`.
Four small incompatibilities of auto_LiRPA 0.3 with torch 2.13 are patched at run time, below; none
touches how a bound is computed (graph parsing, a keyword argument, a reshape of a non-contiguous view).

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
        elif layer[0] == "avgpool":
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


def main(path):
    arrays, cases = {}, []
    for name, (input_shape, layers) in ARCHITECTURES.items():
        for seed in SEEDS:
            rng = np.random.default_rng(seed)
            key = f"{name}_{seed}"
            weights = random_weights(layers, input_shape, rng)
            x = rng.uniform(0, 1, (POINTS,) + input_shape)
            network, padded_first = torch_network(layers, input_shape, weights)
            with torch.no_grad():  # the twin computes the same function (checked again in Keras by the test)
                logits = network(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
            arrays.update({f"{key}/x": x, f"{key}/logits": logits})
            arrays.update({f"{key}/w{i}": v for i, v in enumerate(weights)})
            entries = []
            for norm, eps in RADII:
                for method, lirpa_method in METHODS.items():
                    if norm == "l2" and padded_first:
                        continue  # see the module docstring
                    lower, upper = lirpa_bounds(network, x, norm, eps, lirpa_method)
                    arrays[f"{key}/{norm}/{eps}/{method}/lower"] = lower
                    arrays[f"{key}/{norm}/{eps}/{method}/upper"] = upper
                    entries.append([norm, eps, method])
            cases.append({"key": key, "input_shape": list(input_shape), "layers": layers, "weights": len(weights),
                          "entries": entries})
            print(key, len(entries), "bound entries")
    arrays["cases"] = np.array(json.dumps(cases))
    arrays["versions"] = np.array(json.dumps({"torch": torch.__version__, "auto_LiRPA": "0.3"}))
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
