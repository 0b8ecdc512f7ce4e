"""Writes auto_lirpa_071_bounds.npz: auto_LiRPA 0.7.1's IBP, CROWN and CROWN-IBP bounds for the networks of
make_auto_lirpa_bounds.py's "nonlinear_cases" (max pooling, sigmoid, tanh; NONLINEAR_ARCHITECTURES x SEEDS,
L-inf boxes of NONLINEAR_RADII clipped to [0, 1]).

Why a second reference: auto_LiRPA 0.7.1 relaxes sigmoid and tanh differently from 0.3. For a neuron with
l < 0 < u it still takes the tangent point d_lower (d_upper) off its 0.01 table for the far bound u (l), but
unless `s_shaped_disable_smoothness_enhancement` is set (off by default) it replaces that line with the tangent
at the midpoint m = (l + u) / 2 whenever the table's point lies beyond the midpoint (d_lower >= m for the lower
line, d_upper < m for the upper line; `BoundSShaped.bound_relax_impl` in operators/s_shaped.py). Entirely
negative/positive intervals: chord on one side, midpoint tangent on the other (as in 0.3).
`tests/certify_reference_nonlinear_test.py` compares swtf with both references.

Environment (not swtf's; /tmp/lirpa071_venv): Python 3.11, torch 2.13.0+cpu (`pip install --no-deps` of the
local wheel, then filelock typing_extensions sympy networkx jinja2 fsspec "setuptools>=77"), numpy 1.26.4,
packaging, appdirs, tqdm, pyyaml, graphviz (imported by auto_LiRPA.tools at import time), and auto_LiRPA
0.7.1 from source, `pip install --no-deps` of
    git --git-dir=<mirror of Verified-Intelligence/auto_LiRPA> archive a050a3d | tar -x -C /tmp/alirpa071
(commit a050a3d, "May 2026 release", __version__ 0.7.1; its setup.py asks for torch < 2.9, hence --no-deps).

Runtime patches for torch 2.13 (none touches how a bound is computed), applied below:
  * none was needed: 0.7.1 builds, and bounds every network here, on torch 2.13 as it is.
The one run-time change, not a torch incompatibility, only caches auto_LiRPA's sigmoid/tanh tangent and
derivative tables (computed by its own code, once per function, instead of once per node and BoundedModule).

Bound options: auto_LiRPA's DEFAULTS (`BoundedModule(network, x, device="cpu")`, no bound_opts), i.e. also
sparse intermediate bounds for ReLU inputs with an IBP reference (which make a point's bounds depend on the
other points of its batch; all POINTS points of a case are bounded in one batch, as make_auto_lirpa_bounds.py
does) and conv_mode 'patches'. For information the generator also prints how far the default bounds are from
those with make_auto_lirpa_bounds.TEXTBOOK_CROWN (full CROWN for every intermediate neuron, swtf's scheme);
only the default bounds are stored.

Networks, weights and points are not redefined here: NONLINEAR_ARCHITECTURES, the seeds, `random_weights`,
`torch_network`, `sampled_outputs`, ... are read out of make_auto_lirpa_bounds.py (its definitions only: that
module patches auto_LiRPA 0.3 at import time, so it is not imported as a whole). The weights, points and
logits are stored again (the file is self-contained; the test checks they equal the 0.3 file's).

Every stored bound is checked against the PyTorch twin's outputs at SAMPLES points of each box (half uniform,
half vertices); a failure or an unsound bound is recorded in the case's "failed" list.

    /tmp/lirpa071_venv/bin/python tests/reference/make_auto_lirpa_071_bounds.py tests/reference/auto_lirpa_071_bounds.npz
"""

import ast
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)

import auto_LiRPA  # noqa: E402
from auto_LiRPA import BoundedModule, BoundedTensor  # noqa: E402
from auto_LiRPA.perturbations import PerturbationLpNorm  # noqa: E402

assert auto_LiRPA.__version__ == "0.7.1", auto_LiRPA.__version__

# --- the definitions of make_auto_lirpa_bounds.py (not its auto_LiRPA 0.3 patches) ------------------------
_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_auto_lirpa_bounds.py")
_NAMES = {"NONLINEAR_ARCHITECTURES", "NONLINEAR_RADII", "SAMPLES", "SEEDS", "POINTS", "METHODS", "TEXTBOOK_CROWN",
          "same_padding", "random_weights", "LinearPad", "SkipConv", "FlattenHWC", "torch_network",
          "sampled_outputs"}


def _load_definitions():
    with open(_SOURCE) as file:
        tree = ast.parse(file.read())
    body = [node for node in tree.body
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in _NAMES)
            or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in _NAMES for t in node.targets))]
    namespace = {"np": np, "torch": torch, "nn": nn}
    exec(compile(ast.Module(body=body, type_ignores=[]), _SOURCE, "exec"), namespace)  # noqa: S102
    missing = _NAMES - namespace.keys()
    assert not missing, missing
    return namespace


_DEFS = _load_definitions()
NONLINEAR_ARCHITECTURES, NONLINEAR_RADII = _DEFS["NONLINEAR_ARCHITECTURES"], _DEFS["NONLINEAR_RADII"]
SAMPLES, SEEDS, POINTS, METHODS = _DEFS["SAMPLES"], _DEFS["SEEDS"], _DEFS["POINTS"], _DEFS["METHODS"]
TEXTBOOK_CROWN = _DEFS["TEXTBOOK_CROWN"]
random_weights, torch_network, sampled_outputs = _DEFS["random_weights"], _DEFS["torch_network"], _DEFS["sampled_outputs"]

# --- auto_LiRPA 0.7.1 on torch 2.13 --------------------------------------------------------------------
PATCHES = ["cache of the sigmoid/tanh tables (BoundSShaped.precompute_relaxation, precompute_dfunc_values)"]

# Not a torch incompatibility: every BoundSigmoid/BoundTanh computes its tangent-point tables (50,000 grid points,
# bisection) and derivative table whenever a BoundedModule is built, minutes per node on this CPU; the tables
# depend only on the function, so each is computed once per class (by auto_LiRPA's own code) and reused.
from auto_LiRPA.operators.s_shaped import BoundSShaped  # noqa: E402

_precompute_relaxation, _precompute_dfunc_values, _TABLES = (
    BoundSShaped.precompute_relaxation, BoundSShaped.precompute_dfunc_values, {})


def _cached_precompute_relaxation(self, func, dfunc, x_limit=500):
    key = type(self), "relaxation", x_limit
    if key not in _TABLES:
        _precompute_relaxation(self, func, dfunc, x_limit)
        _TABLES[key] = (self.num_points_pre, self.d_lower, self.d_upper)
    self.x_limit = x_limit
    self.num_points_pre, self.d_lower, self.d_upper = _TABLES[key]


def _cached_precompute_dfunc_values(self, func, dfunc, x_limit=500):
    key = type(self), "dfunc", x_limit, self.num_points_pre
    if key not in _TABLES:
        _precompute_dfunc_values(self, func, dfunc, x_limit)
        _TABLES[key] = self.dfunc_values
    self.dfunc_values = _TABLES[key]


BoundSShaped.precompute_relaxation = _cached_precompute_relaxation
BoundSShaped.precompute_dfunc_values = _cached_precompute_dfunc_values
# ---------------------------------------------------------------------------------------------------


def lirpa_bounds(network, x_nhwc, eps, method, bound_opts=None):
    x = torch.tensor(x_nhwc.transpose(0, 3, 1, 2))
    model = BoundedModule(network, torch.zeros_like(x), device="cpu", verbose=False, bound_opts=bound_opts)
    perturbation = PerturbationLpNorm(norm=np.inf, eps=eps, x_L=(x - eps).clamp(0, 1), x_U=(x + eps).clamp(0, 1))
    lower, upper = model.compute_bounds(x=(BoundedTensor(x, perturbation),), method=method)
    return lower.detach().numpy(), upper.detach().numpy()


def add_case(arrays, cases, name, seed, input_shape, layers):
    rng = np.random.default_rng(seed)
    key = f"{name}_{seed}"
    weights = random_weights(layers, input_shape, rng)
    x = rng.uniform(0, 1, (POINTS,) + input_shape)
    network, _ = torch_network(layers, input_shape, weights)
    with torch.no_grad():
        logits = network(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    arrays.update({f"{key}/x": x, f"{key}/logits": logits})
    arrays.update({f"{key}/w{i}": v for i, v in enumerate(weights)})
    entries, failed = [], []
    for norm, eps in NONLINEAR_RADII:
        samples = sampled_outputs(network, x, eps, np.random.default_rng(1000 + seed))
        for method, lirpa_method in METHODS.items():
            try:
                lower, upper = lirpa_bounds(network, x, eps, lirpa_method)
            except Exception as error:  # noqa: BLE001 (recorded)
                failed.append([norm, eps, method, f"{type(error).__name__}: {error}"[:200]])
                print(key, norm, eps, method, "FAILED", failed[-1][-1])
                continue
            below, above = np.max(lower[:, None] - samples), np.max(samples - upper[:, None])
            if max(below, above) > 1e-9:
                print(key, norm, eps, method, f"auto_LiRPA UNSOUND by {max(below, above):.3g}")
                failed.append([norm, eps, method, f"unsound by {max(below, above):.3g}"])
            if method != "ibp":  # information only: default options vs full CROWN for every intermediate neuron
                t_lower, t_upper = lirpa_bounds(network, x, eps, lirpa_method, TEXTBOOK_CROWN)
                gap = max(np.max(np.abs(t_lower - lower)), np.max(np.abs(t_upper - upper)))
                if gap > 1e-9:
                    print(f"  {key} {eps} {method}: default vs TEXTBOOK_CROWN options differ by {gap:.3g}")
            arrays[f"{key}/{norm}/{eps}/{method}/lower"] = lower
            arrays[f"{key}/{norm}/{eps}/{method}/upper"] = upper
            entries.append([norm, eps, method])
    cases.append({"key": key, "input_shape": list(input_shape), "layers": layers, "weights": len(weights),
                  "entries": entries, "failed": failed})
    print(key, len(entries), "bound entries", "failed:", failed)


def main(path):
    arrays, cases = {}, []
    for name, (input_shape, layers) in NONLINEAR_ARCHITECTURES.items():
        for seed in SEEDS:
            add_case(arrays, cases, name, seed, input_shape, layers)
    arrays["nonlinear_cases"] = np.array(json.dumps(cases))
    arrays["versions"] = np.array(json.dumps({"torch": torch.__version__, "numpy": np.__version__,
                                              "auto_LiRPA": auto_LiRPA.__version__, "commit": "a050a3d",
                                              "bound_opts": "defaults", "patches": PATCHES}))
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
