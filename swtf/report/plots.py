"""The report's plots, each titled with labelled axes and units, written as PNG files.

Every function takes plain rows read from the run's artifacts and a path, so plots never recompute
anything: what they show is what the artifacts hold.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from swtf import io  # noqa: E402

RADIUS_LABEL = "L∞ radius ε (pixel units, [0, 1])"


def _legend_beside(ax):
    """Legend to the right of the axes, so that it never hides data, whatever the number of models."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _model_axes():
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # distinct colours for up to 20 models
    return fig, ax


def _save(fig, path):
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def distillation_accuracy_vs_params(rows, teacher, path):
    """Test accuracy of each selected student against its parameter count, per family and method."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = {}
    for row in rows:
        groups.setdefault((row["architecture"], row["method"]), []).append(row)
    markers = {"logits": "o", "soft_targets": "s", "hinton": "^", "labels": "x"}
    for (family, method), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r["params"])
        ax.plot([r["params"] for r in group], [r["test_accuracy"] for r in group], marker=markers.get(method, "o"),
                label=f"{family}, {method.replace('_', ' ')}")
    ax.axhline(teacher["test_accuracy"], color="black", linestyle="--",
               label=f"teacher ({teacher['params']:,} parameters)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Distillation: student accuracy against size")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def distillation_accuracy_vs_temperature(rows, path):
    """Validation and test accuracy of the soft-target students against the teacher's temperature."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    students = sorted({r["student"] for r in rows if r.get("temperature")})
    for student in students:
        group = sorted((r for r in rows if r["student"] == student and r.get("temperature")),
                       key=lambda r: r["temperature"])
        temps = [r["temperature"] for r in group]
        line, = ax.plot(temps, [r["test_accuracy"] for r in group], marker="o", label=f"{student} (test)")
        ax.plot(temps, [r["val_accuracy"] for r in group], marker="o", linestyle=":", color=line.get_color(),
                label=f"{student} (validation, selects T)")
    ax.set_xscale("log")
    ax.set_xlabel("teacher temperature T (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title("Distillation: accuracy against temperature")
    _legend_beside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pruning_accuracy_vs_params(steps, teacher, path):
    """Accuracy of each pruning step (step 0 = unpruned student) against parameters, with the teacher."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    params = [s["params"] for s in steps]
    ax.plot(params, [s["test_accuracy"] for s in steps], marker="o", label="pruned student (test)")
    ax.plot(params, [s["val_accuracy"] for s in steps], marker="o", linestyle=":", label="pruned student (validation)")
    for s in steps:
        ax.annotate(f"step {s['step']}", (s["params"], s["test_accuracy"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.scatter([teacher["params"]], [teacher["test_accuracy"]], color="black", marker="*", s=120,
               label="teacher (test)", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title("Pruning: accuracy against parameters")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def sorted_radii(radii_by_model, method, path):
    """Certified radii sorted in decreasing order against the fraction of test points."""
    fig, ax = _model_axes()
    for name, radii in radii_by_model.items():
        values = np.sort(np.asarray(radii, dtype=float))[::-1]
        ax.plot(np.arange(1, len(values) + 1) / len(values), values, label=name)
    ax.set_xlabel("fraction of test points")
    ax.set_ylabel(f"certified {RADIUS_LABEL}")
    ax.set_title(f"Certified radii ({method}), sorted; misclassified points count as 0")
    _legend_beside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def certified_accuracy_vs_eps(radii_by_model, method, path):
    """Certified accuracy (fraction of points with radius >= eps) against eps."""
    fig, ax = _model_axes()
    top = max((float(np.max(r)) for r in radii_by_model.values() if len(r)), default=0.1) or 0.1
    grid = np.linspace(0.0, top * 1.05, 200)
    for name, radii in radii_by_model.items():
        radii = np.asarray(radii, dtype=float)
        ax.plot(grid, [(radii >= e).mean() if e > 0 else (radii > 0).mean() for e in grid], label=name)
    ax.set_xlabel(RADIUS_LABEL)
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Certified accuracy against radius ({method})")
    _legend_beside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)
