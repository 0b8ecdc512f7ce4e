"""Styling shared by every plot: one colour per model, the teacher thick, dark and on top, titled axes, PNG out."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from swtf import io  # noqa: E402

NORM_LABELS = {"linf": "L∞", "l2": "L2"}
REFERENCE_COLORS = ("black", "dimgray", "saddlebrown")  # one per teacher, in the order given
REFERENCE_LINEWIDTH = 2.8
MODEL_LINEWIDTH = 1.3


def radius_label(norm="linf"):
    return f"eps ({NORM_LABELS[norm]} radius, pixel units in [0, 1])"


def model_axes():
    """A figure and axes whose lines cycle through 20 distinct colours (one per model): tab20's ten strong ones
    first, then their light pairs, so that up to ten models never share a hue."""
    figure, axes = plt.subplots(figsize=(7, 4.4))
    colors = plt.get_cmap("tab20").colors
    axes.set_prop_cycle(color=colors[::2] + colors[1::2])
    return figure, axes


def line_style(name, references=()):
    """Keyword arguments for model `name`'s line: a teacher (one of `references`) is thick, dark, drawn on top
    and labelled "(teacher)"; any other model gets the next colour and a thin line."""
    if name in references:
        return {"color": REFERENCE_COLORS[list(references).index(name) % len(REFERENCE_COLORS)],
                "linewidth": REFERENCE_LINEWIDTH, "zorder": 5, "label": f"{name} (teacher)"}
    return {"linewidth": MODEL_LINEWIDTH, "zorder": 3, "label": name}


def finish(axes, title, xlabel, ylabel, extra_handles=()):
    """Title, axis labels, grid, and a legend beside the axes (never over data); `extra_handles` explain styles."""
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    handles, _ = axes.get_legend_handles_labels()
    axes.legend(handles=handles + list(extra_handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def save(figure, path):
    """Writes `figure` to `path` as a PNG (atomically), closes it and returns `path`."""
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png", bbox_inches="tight")
    plt.close(figure)
    return path
