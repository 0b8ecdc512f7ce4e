"""Robustness curves: accuracy under attack against the radius eps, per seed, on fixed test points.

A curve is computed on exactly the points it is given, so curves of several models on the same points are
comparable point for point. Randomised attacks (PGD's random starts) are repeated once per seed, and
`summary_rows` reports the spread over seeds (mean, std, min, max), so that a gap smaller than that spread
is not read as a difference between models. At eps 0 no attack runs: the value is the clean accuracy.

Two backends craft the examples: swtf's attacks, and cleverhans 4's PGD (`reference.cleverhans_pgd`,
untargeted cross-entropy PGD with one start) as an independent check through the same scoring.
"""

import numpy as np

from swtf import io
from swtf.attack import inputs
from swtf.attack.attacks import ATTACKS
from swtf.attack.evaluation import is_adversarial, robust_accuracy
from swtf.errors import SwtfError

BACKENDS = ("swtf", "cleverhans")
RANDOMIZED_ATTACKS = ("pgd",)  # the others start at x and are deterministic: one seed says everything
SUMMARY_COLUMNS = ("model", "eps", "mean", "std", "min", "max", "seeds", "points")
# What cleverhans's PGD can take; it is always untargeted, cross-entropy, one start.
_CLEVERHANS_ARGUMENTS = ("norm", "steps", "step_size", "random_start", "clip", "batch_size")


def _cleverhans_accuracy(model, x, y, eps, seed, kwargs):
    from swtf.attack.reference import cleverhans_pgd  # imports cleverhans only when asked for

    kwargs = {key: kwargs[key] for key in _CLEVERHANS_ARGUMENTS if key in kwargs}  # drops restarts=1, loss="ce"
    rand_init = kwargs.pop("random_start", True)
    x_adv = cleverhans_pgd(model, x, y, eps, rand_init=rand_init, seed=seed, **kwargs)
    return float(1.0 - np.mean(is_adversarial(model, x_adv, y, batch_size=kwargs.get("batch_size", 256))))


def check_backend(attack, backend, kwargs):
    """Refuses, in one line, an attack setting the backend cannot run."""
    inputs.check_choice("backend", backend, BACKENDS)
    inputs.check_choice("attack", attack, tuple(ATTACKS))
    if backend != "cleverhans":
        return
    if attack != "pgd":
        raise SwtfError(f"the cleverhans backend runs only pgd, got attack={attack!r}; use backend='swtf'")
    if kwargs.get("restarts", 1) != 1:
        raise SwtfError(f"cleverhans's PGD has one random start, got restarts={kwargs['restarts']}; use restarts=1")
    if kwargs.get("loss", "ce") != "ce" or kwargs.get("targeted", False):
        raise SwtfError("cleverhans's PGD is untargeted with the cross-entropy loss; drop loss= and targeted=")
    unknown = sorted(set(kwargs) - set(_CLEVERHANS_ARGUMENTS) - {"restarts", "loss", "targeted"})
    if unknown:
        raise SwtfError(f"cleverhans's PGD takes no {', '.join(unknown)}; it takes {', '.join(_CLEVERHANS_ARGUMENTS)}")


def robustness_curve(model, x, y, eps_grid, *, attack="pgd", seeds=(0,), backend="swtf", **attack_kwargs):
    """Accuracy under `attack` at every eps of `eps_grid` and every seed, on exactly the points `x`, `y`.

    Args:
      model: a Keras model producing logits.
      x, y: the test points (inputs in the attack's `clip` box, integer labels).
      eps_grid: radii, each >= 0; 0 gives the clean accuracy.
      attack: a name in `swtf.attack.ATTACKS`.
      seeds: seeds of the random starts, one run each. Deterministic attacks (fgsm, bim, mim) take one seed.
      backend: "swtf" or "cleverhans" (pgd only: untargeted, cross-entropy, restarts=1, step_size <= eps).
      **attack_kwargs: passed to the attack (norm, steps, restarts, step_size, batch_size, ...).

    Returns:
      {"attack", "backend", "settings": attack_kwargs, "points": N, "eps": [..], "seeds": [..],
       "accuracy": [[accuracy for each seed] for each eps]}.
    """
    check_backend(attack, backend, attack_kwargs)
    eps_grid = [inputs.check_radius("eps", eps) for eps in eps_grid]
    seeds = [int(s) for s in seeds]
    if not eps_grid or not seeds:
        raise SwtfError(f"need at least one eps and one seed, got eps_grid={eps_grid}, seeds={seeds}")
    if attack not in RANDOMIZED_ATTACKS and len(seeds) > 1:
        raise SwtfError(f"{attack} has no random start, so every seed gives the same curve; pass one seed")
    if "seed" in attack_kwargs:
        raise SwtfError("pass seeds=(...) to robustness_curve, not seed=")
    batch_size = attack_kwargs.get("batch_size", 256)
    clean = float(1.0 - np.mean(is_adversarial(model, x, y, batch_size=batch_size))) if len(y) else float("nan")

    def accuracy(eps, seed):
        if eps == 0:
            return clean
        if backend == "cleverhans":
            return _cleverhans_accuracy(model, x, y, eps, seed, attack_kwargs)
        seeded = {"seed": seed} if attack in RANDOMIZED_ATTACKS else {}
        return robust_accuracy(model, x, y, eps, attack, **seeded, **attack_kwargs)

    return {"attack": attack, "backend": backend, "settings": dict(attack_kwargs), "points": int(len(y)),
            "eps": eps_grid, "seeds": seeds, "accuracy": [[accuracy(eps, s) for s in seeds] for eps in eps_grid]}


def robustness_curves(models, x, y, eps_grid, **kwargs):
    """`robustness_curve` for each model of `{name: model}` on the same points; returns `{name: curve}`."""
    return {name: robustness_curve(model, x, y, eps_grid, **kwargs) for name, model in models.items()}


def summary_rows(curves):
    """One row per model and eps: mean, std (population, over seeds), min and max of the accuracy."""
    rows = []
    for name, curve in curves.items():
        for eps, per_seed in zip(curve["eps"], curve["accuracy"]):
            values = np.asarray(per_seed, np.float64)
            rows.append({"model": name, "eps": eps, "mean": float(values.mean()), "std": float(values.std()),
                         "min": float(values.min()), "max": float(values.max()), "seeds": len(values),
                         "points": curve["points"]})
    return rows


def write_curves(stem, curves, **metadata):
    """Writes `<stem>.csv` (the summary rows) and `<stem>.json` (metadata, summary rows, per-seed curves)."""
    rows = summary_rows(curves)
    io.write_csv(stem + ".csv", rows, SUMMARY_COLUMNS)
    io.write_json(stem + ".json", {**metadata, "summary": rows, "curves": curves})
    return rows
