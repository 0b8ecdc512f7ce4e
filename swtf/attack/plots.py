"""The robustness-curve plot: accuracy under attack against eps, one line per model, spread over seeds shaded."""

import numpy as np

from swtf import plotting
from swtf.attack import inputs

BANDS = ("minmax", "std")
DEFAULT_STEP_SIZES = {"pgd": "2.5·ε/steps", "bim": "2.5·ε/steps", "mim": "ε/steps", "fgsm": "ε",
                      "apgd": "2·ε initially, adaptive"}  # the attacks' own defaults (swtf.attack.attacks)


def band_limits(per_seed, band):
    """(mean, low, high) over seeds (axis 1): the band is min-max, or mean -/+ one population std."""
    values = np.asarray(per_seed, np.float64)
    mean = values.mean(axis=1)
    if band == "std":
        return mean, mean - values.std(axis=1), mean + values.std(axis=1)
    return mean, values.min(axis=1), values.max(axis=1)


def seeds_vary(per_seed):
    """Whether any eps's accuracy differs between seeds ([eps][seed] accuracies)."""
    values = np.asarray(per_seed, np.float64)
    return bool(np.any(values.max(axis=1) > values.min(axis=1)))


def count(n, noun):
    """'1 step', '20 steps'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def describe_attack(attack, settings):
    """'PGD, 20 steps x 2 restarts, step size 2.5·ε/steps' from the attack's name and stored settings (the
    attack's default step size where they name none)."""
    parts = [attack.upper()]
    if attack != "fgsm" and "steps" in settings:
        parts.append(count(settings["steps"], "step") + (f" x {count(settings['restarts'], 'restart')}"
                                                          if "restarts" in settings else ""))
    step = settings.get("step_size")
    parts.append(f"step size {step:g}" if step is not None else f"step size {DEFAULT_STEP_SIZES[attack]}")
    return ", ".join(parts)


def plot_robustness_curves(curves, path, *, norm="linf", band="minmax", title="Accuracy under attack",
                           references=(), settings=None):
    """Writes a PNG: for each curve of `{name: robustness_curve(...)}`, its mean over seeds, with a band where
    seeds give different accuracies (none where every seed gave the same: the attack was deterministic there).

    Args:
      curves: `{model name: curve}` as returned by `swtf.attack.curves.robustness_curve`.
      path: the PNG to write.
      norm: "linf" or "l2" (names the x axis).
      band: "minmax" (min to max over seeds) or "std" (mean -/+ one standard deviation).
      title: the plot's title; the attack's steps, restarts and step size are added below it.
      references: the teachers among the curves, drawn thick and on top.
      settings: the attack's settings (steps, restarts, step_size); default: the first curve's.
    """
    inputs.check_choice("band", band, BANDS)
    figure, axes = plotting.model_axes()
    first = next(iter(curves.values()), {})
    banded = 0
    for name in sorted(curves, key=lambda n: n not in references):
        curve = curves[name]
        eps = np.asarray(curve["eps"], np.float64)
        order = np.argsort(eps)
        mean, low, high = (v[order] for v in band_limits(curve["accuracy"], band))
        seeds = len(curve["seeds"])
        varies = seeds_vary(curve["accuracy"])
        style = plotting.line_style(name, references)
        style["label"] += f" ({seeds} seed{'s' if seeds > 1 else ''}{'' if varies else ', no spread'})"
        line, = axes.plot(eps[order], mean, marker="o", markersize=3, **style)
        if varies:
            banded += 1
            axes.fill_between(eps[order], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    spread = "min-max" if band == "minmax" else "±1 std"
    bands = (f"band: {spread} over seeds, drawn for the {banded} model(s) whose seeds differ" if banded else
             "no band: every seed gave the same accuracy at every eps "
             "(the attack was deterministic on these points)")
    axes.set_ylim(-0.02, 1.02)
    attack = describe_attack(first.get("attack", "pgd"), settings or first.get("settings", {}))
    plotting.finish(axes, f"{title}\n{attack}; line: mean over seeds\n{bands}", plotting.radius_label(norm),
                    f"accuracy under attack (fraction of {first.get('points', 'N')} test points)")
    plotting.save(figure, path)
