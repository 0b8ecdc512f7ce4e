"""Plots of the factors study (matplotlib, Agg backend): accuracy against size and against temperature."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from swtf import io  # noqa: E402

MARKERS = {"snn": "o", "scnn1": "s", "scnn2": "^", "shallow_cnn": "D"}


def _save(fig, path):
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def accuracy_against_params(summary, path, teacher_accuracy=None):
    """Test accuracy (mean ± std over seeds) against parameter count, one line per family and method."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({e["method"] for e in summary})
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for family in sorted({e["architecture"] for e in summary}):
        for method in methods:
            points = sorted((e for e in summary if e["architecture"] == family and e["method"] == method),
                            key=lambda e: e["params"])
            if not points:
                continue
            ax.errorbar([e["params"] for e in points], [100 * e["test_accuracy_mean"] for e in points],
                        yerr=[100 * e["test_accuracy_std"] for e in points], color=colors[method],
                        marker=MARKERS.get(family, "x"), capsize=3, label=f"{family}, {method}")
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color="k", linestyle="--", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("student parameters (count, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Student test accuracy against size (mean ± std over seeds)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def accuracy_against_temperature(summary, path):
    """Test and validation accuracy (mean ± std over seeds) against temperature, one line per student."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = sorted({(e["student"], e["method"]) for e in summary})
    for i, (student, method) in enumerate(groups):
        points = sorted((e for e in summary if (e["student"], e["method"]) == (student, method)),
                        key=lambda e: e["temperature"])
        temperatures = [e["temperature"] for e in points]
        ax.errorbar(temperatures, [100 * e["test_accuracy_mean"] for e in points],
                    yerr=[100 * e["test_accuracy_std"] for e in points], color=f"C{i}", marker="o", capsize=3,
                    label=f"{student}, {method}: test")
        ax.plot(temperatures, [100 * e["val_accuracy_mean"] for e in points], color=f"C{i}", linestyle=":",
                label=f"{student}, {method}: validation")
    ax.set_xscale("log")
    ax.set_xticks(sorted({e["temperature"] for e in summary}))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("teacher temperature T (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Student accuracy against teacher temperature (mean ± std over seeds)")
    ax.legend(fontsize="small")
    return _save(fig, path)
