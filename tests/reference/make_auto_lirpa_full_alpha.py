"""Writes auto_lirpa_full_alpha.npz: auto_LiRPA 0.7.1's CROWN and alpha-CROWN margin lower bounds of a random
ReLU MLP (64-96-96-10, He-scaled Gaussian weights), for `tests/certify_full_alpha_test.py`.

auto_LiRPA's `compute_bounds(method='alpha-CROWN')` with default options and no given intermediate bounds
re-optimises the intermediate bounds every iteration with alphas per start node (its `fix_interm_bounds`
default only applies to intermediate bounds passed in), as swtf's `full_alpha_crown` does; its default
options also use sparse intermediate bounds with an IBP reference. Environment: /tmp/lirpa071_venv, as
described in make_auto_lirpa_071_bounds.py (auto_LiRPA 0.7.1, torch CPU, float64).

    /tmp/lirpa071_venv/bin/python tests/reference/make_auto_lirpa_full_alpha.py tests/reference/auto_lirpa_full_alpha.npz
"""

import json
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

SIZES = (64, 96, 96, 10)
POINTS = 5
RADII = (0.005, 0.01, 0.02)
METHODS = ("CROWN", "alpha-CROWN")


def main(path):
    rng = np.random.default_rng(0)
    arrays = {}
    layers = []
    for i, (m, n) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        arrays[f"w{i}"], arrays[f"b{i}"] = rng.normal(size=(m, n)) * np.sqrt(2 / m), rng.normal(size=n) * 0.1
        linear = nn.Linear(m, n)
        linear.weight.data, linear.bias.data = torch.tensor(arrays[f"w{i}"].T.copy()), torch.tensor(arrays[f"b{i}"])
        layers += [linear] + ([nn.ReLU()] if i < len(SIZES) - 2 else [])
    network = nn.Sequential(*layers)
    arrays["x"], arrays["y"] = rng.random((POINTS, SIZES[0])), rng.integers(0, SIZES[-1], POINTS)
    x = torch.tensor(arrays["x"])
    eye = np.eye(SIZES[-1])
    c = torch.tensor(eye[arrays["y"]][:, None, :] - eye[None])  # (N, K, K): rows e_y - e_j
    for eps in RADII:
        for method in METHODS:
            model = BoundedModule(network, torch.zeros_like(x), device="cpu", verbose=False)
            perturbation = PerturbationLpNorm(norm=np.inf, eps=eps, x_L=(x - eps).clamp(0, 1),
                                              x_U=(x + eps).clamp(0, 1))
            lower, _ = model.compute_bounds(x=(BoundedTensor(x, perturbation),), C=c, method=method,
                                            bound_upper=False)
            arrays[f"{eps}/{method}"] = lower.detach().numpy()
            print(eps, method, "done")
    arrays["radii"] = np.array(RADII)
    arrays["versions"] = np.array(json.dumps({"torch": torch.__version__, "numpy": np.__version__,
                                              "auto_LiRPA": auto_LiRPA.__version__, "bound_opts": "defaults"}))
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
