"""The pruning stage's plots: per-layer sensitivity, and accuracy against parameter count."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from swtf import io  # noqa: E402

MARKERS = ("o", "s", "*", "D", "^")


def _save(figure, path):
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_sensitivity(rows, path, title="Pruning sensitivity"):
    """One line per Conv2D layer: validation accuracy (%) against the share of its filters removed (%).

    `rows` are `policies.sensitivity`'s.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    by_layer = {}
    for row in rows:
        by_layer.setdefault((row["layer"], row["filters"]), []).append(row)
    for (layer, filters), layer_rows in by_layer.items():
        axes.plot([100 * r["fraction"] for r in layer_rows], [100 * r["val_accuracy"] for r in layer_rows],
                  marker="o", label=f"{layer} ({filters} filters)")
    axes.set_title(title)
    axes.set_xlabel("filters removed from the layer (%)")
    axes.set_ylabel("validation accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_accuracy_vs_params(series, path, title="Accuracy against model size"):
    """Test accuracy (%) against parameter count (log scale), one marked line per series.

    Args:
      series: `{label: [(params, accuracy), ...]}`, e.g. the teacher (one point), each pruning step, and the
        unpruned student; later series are drawn on top, single points larger.
      path: the PNG to write.
      title: the plot's title.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    for order, (label, points) in enumerate(series.items()):
        params, accuracy = zip(*points)
        axes.plot(params, [100 * a for a in accuracy], marker=MARKERS[order % len(MARKERS)],
                  markersize=11 if len(points) == 1 else 6, zorder=2 + order, label=label)
    axes.set_xscale("log")
    axes.set_title(title)
    axes.set_xlabel("parameters (count, log scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    _save(figure, path)
