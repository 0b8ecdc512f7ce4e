"""The certification stage's plots: sorted certified radii, and certified accuracy against eps."""

import numpy as np

from swtf import plotting


def plot_sorted_radii(radii, norm, path, title="Certified radii", references=()):
    """One line per model: its radii sorted in decreasing order against the fraction of points.

    Args:
      radii: `{label: (N,) radii}`, misclassified points counted as radius 0.
      norm: 'linf' or 'l2' (names the axis).
      path: the PNG to write.
      title: the plot's title.
      references: the teachers among the labels, drawn thick and on top.
    """
    figure, axes = plotting.model_axes()
    points = max((len(r) for r in radii.values()), default=0)
    for label in sorted(radii, key=lambda n: n not in references):
        values = np.sort(np.asarray(radii[label], np.float64))[::-1]
        fraction = np.arange(len(values) + 1) / max(len(values), 1)  # point i covers [i/N, (i+1)/N)
        axes.step(fraction, np.append(values, values[-1:]), where="post", **plotting.line_style(label, references))
    plotting.finish(axes, title, f"fraction of the {points} test points (sorted by radius, largest first)",
                    f"certified radius ({plotting.NORM_LABELS[norm]}, pixel units in [0, 1])")
    plotting.save(figure, path)


def certified_accuracy_curve(radii, correct, eps_grid):
    """Fraction of points certified at each eps of `eps_grid`: correctly classified with a certified radius
    of at least eps (a radius certifies the whole ball, so every smaller eps too; at eps 0 this is the
    clean accuracy)."""
    radii, correct = np.asarray(radii, np.float64), np.asarray(correct, bool)
    return np.array([np.mean(correct & (radii >= eps)) if len(radii) else np.nan for eps in eps_grid])


def plot_certified_accuracy(results, norm, path, title="Certified accuracy against radius", references=()):
    """One line per model: certified accuracy against eps, read off its certified radii.

    `results` is `{label: (radii, correct)}`, `correct` marking the correctly classified points; `references`
    the teachers among the labels, drawn thick and on top.
    """
    figure, axes = plotting.model_axes()
    largest = max([float(np.max(r)) for r, _ in results.values() if len(r)] + [1e-3])
    eps_grid = np.linspace(0.0, 1.05 * largest, 200)
    points = max((len(r) for r, _ in results.values()), default=0)
    for label in sorted(results, key=lambda n: n not in references):
        radii, correct = results[label]
        axes.plot(eps_grid, certified_accuracy_curve(radii, correct, eps_grid),
                  **plotting.line_style(label, references))
    axes.set_ylim(-0.02, 1.02)
    plotting.finish(axes, title, plotting.radius_label(norm),
                    f"certified accuracy (fraction of {points} test points)")
    plotting.save(figure, path)
