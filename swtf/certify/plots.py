"""The certification stage's plots: sorted certified radii, and certified accuracy against eps."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from swtf import io  # noqa: E402

NORM_LABELS = {"linf": "L∞", "l2": "L2"}


def _save(figure, path):
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def _radius_label(norm):
    return f"{NORM_LABELS[norm]} radius (pixel units, [0,1])"


def plot_sorted_radii(radii, norm, path, title="Certified radii"):
    """One line per model: its radii sorted in decreasing order against the fraction of points.

    Args:
      radii: `{label: (N,) radii}`, misclassified points counted as radius 0.
      norm: 'linf' or 'l2' (names the axis).
      path: the PNG to write.
      title: the plot's title.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, values in radii.items():
        values = np.sort(np.asarray(values, np.float64))[::-1]
        fraction = np.arange(len(values) + 1) / max(len(values), 1)  # point i covers [i/N, (i+1)/N)
        axes.step(fraction, np.append(values, values[-1:]), where="post", label=label)
    axes.set_title(title)
    axes.set_xlabel("fraction of points (sorted by radius, largest first)")
    axes.set_ylabel("certified " + _radius_label(norm))
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def certified_accuracy_curve(radii, correct, eps_grid):
    """Fraction of points certified at each eps of `eps_grid`: correctly classified with a certified radius
    of at least eps (a radius certifies the whole ball, so every smaller eps too; at eps 0 this is the
    clean accuracy)."""
    radii, correct = np.asarray(radii, np.float64), np.asarray(correct, bool)
    return np.array([np.mean(correct & (radii >= eps)) if len(radii) else np.nan for eps in eps_grid])


def plot_certified_accuracy(results, norm, path, title="Certified accuracy against radius"):
    """One line per model: certified accuracy (%) against eps, read off its certified radii.

    `results` is `{label: (radii, correct)}`, `correct` marking the correctly classified points.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    largest = max([float(np.max(r)) for r, _ in results.values() if len(r)] + [1e-3])
    eps_grid = np.linspace(0.0, 1.05 * largest, 200)
    for label, (radii, correct) in results.items():
        axes.plot(eps_grid, 100 * certified_accuracy_curve(radii, correct, eps_grid), label=label)
    axes.set_title(title)
    axes.set_xlabel("eps, " + _radius_label(norm))
    axes.set_ylabel("certified accuracy (%)")
    axes.set_ylim(-2, 102)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)
