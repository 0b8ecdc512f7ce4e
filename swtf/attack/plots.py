"""The robustness-curve plot: accuracy under attack against eps, one line per model, spread over seeds shaded."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from swtf import io  # noqa: E402
from swtf.attack import inputs  # noqa: E402

NORM_LABELS = {"linf": "L∞", "l2": "L2"}
BANDS = ("minmax", "std")


def band_limits(per_seed, band):
    """(mean, low, high) over seeds (axis 1): the band is min-max, or mean -/+ one population std."""
    values = np.asarray(per_seed, np.float64)
    mean = values.mean(axis=1)
    if band == "std":
        return mean, mean - values.std(axis=1), mean + values.std(axis=1)
    return mean, values.min(axis=1), values.max(axis=1)


def plot_robustness_curves(curves, path, *, norm="linf", band="minmax", title="Accuracy under attack"):
    """Writes a PNG: for each curve of `{name: robustness_curve(...)}`, its mean over seeds with a band.

    Args:
      curves: `{model name: curve}` as returned by `swtf.attack.curves.robustness_curve`.
      path: the PNG to write.
      norm: "linf" or "l2" (names the x axis).
      band: "minmax" (min to max over seeds) or "std" (mean -/+ one standard deviation).
      title: the plot's title.
    """
    inputs.check_choice("band", band, BANDS)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # distinct colours for up to 20 models
    for name, curve in curves.items():
        eps = np.asarray(curve["eps"], np.float64)
        order = np.argsort(eps)
        mean, low, high = (v[order] for v in band_limits(curve["accuracy"], band))
        seeds = len(curve["seeds"])
        line, = axes.plot(eps[order], mean, marker="o", markersize=3,
                          label=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})")
        axes.fill_between(eps[order], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    spread = "min-max" if band == "minmax" else "±1 std"
    axes.set_title(f"{title}\n(line: mean over seeds, band: {spread})", fontsize=10)
    axes.set_xlabel(f"{NORM_LABELS[norm]} radius ε (pixel units, [0, 1])")
    axes.set_ylabel("accuracy under attack")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over data
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
