"""Robustness curves: accuracy under attack against the radius eps, per seed, on fixed test points.

A curve is computed on exactly the points it is given, so curves of several models on the same points are
comparable point for point. Randomised attacks (PGD's and APGD's random restarts) are repeated once per seed, and
`summary_rows` reports the spread over seeds (mean, std, min, max), so that a gap smaller than that spread
is not read as a difference between models. At eps 0 no attack runs: the value is the clean accuracy.

Two backends craft the examples: swtf's attacks, and cleverhans 4's PGD (`reference.cleverhans_pgd`,
untargeted cross-entropy PGD with one start) as an independent check through the same scoring.
"""

import numpy as np

from swtf import io
from swtf.attack import inputs
from swtf.attack.attacks import ATTACKS
from swtf.attack.evaluation import is_adversarial
from swtf.errors import SwtfError

BACKENDS = ("swtf", "cleverhans")
RANDOMIZED_ATTACKS = ("pgd", "apgd")  # the others start at x and are deterministic: one seed says everything
SUMMARY_COLUMNS = ("model", "eps", "mean", "std", "min", "max", "seeds", "points")
# What cleverhans's PGD can take; it is always untargeted, cross-entropy, one start.
_CLEVERHANS_ARGUMENTS = ("norm", "steps", "step_size", "random_start", "clip", "batch_size")


def _cleverhans_fooled(model, x, y, eps, seed, kwargs):
    from swtf.attack.reference import cleverhans_pgd  # imports cleverhans only when asked for

    kwargs = {key: kwargs[key] for key in _CLEVERHANS_ARGUMENTS if key in kwargs}  # drops restarts=1, loss="ce"
    rand_init = kwargs.pop("random_start", True)
    x_adv = cleverhans_pgd(model, x, y, eps, rand_init=rand_init, seed=seed, **kwargs)
    return is_adversarial(model, x_adv, y, batch_size=kwargs.get("batch_size", 256))


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


def _check_curve_arguments(attack, backend, eps_grid, seeds, attack_kwargs):
    check_backend(attack, backend, attack_kwargs)
    eps_grid = [inputs.check_radius("eps", eps) for eps in eps_grid]
    seeds = [int(s) for s in seeds]
    if not eps_grid or not seeds:
        raise SwtfError(f"need at least one eps and one seed, got eps_grid={eps_grid}, seeds={seeds}")
    if attack not in RANDOMIZED_ATTACKS and len(seeds) > 1:
        raise SwtfError(f"{attack} has no random start, so every seed gives the same curve; pass one seed")
    if "seed" in attack_kwargs:
        raise SwtfError("pass seeds=(...) to robustness_curve, not seed=")
    if attack_kwargs.get("targeted"):
        raise SwtfError("robustness curves measure untargeted robustness; drop targeted=True")
    return eps_grid, seeds


def point_outcomes(model, x, y, eps_grid, *, attack="pgd", seeds=(0,), backend="swtf", first_index=0, progress=None,
                   **attack_kwargs):
    """Per point, whether the model still classifies it correctly under `attack`, at every eps and seed.

    Arguments as for `robustness_curve`; `first_index`: `x` is the points first_index.. of a larger set
    (swtf backend), and each point is attacked from the random start it gets when the whole set is.

    Returns:
      {"eps": [..], "seeds": [..], "correct": [[[bool per point] for each seed] for each eps]}.
    """
    eps_grid, seeds = _check_curve_arguments(attack, backend, eps_grid, seeds, attack_kwargs)
    if first_index and backend != "swtf":
        raise SwtfError(f"the {backend} backend draws random starts for the whole batch, so it cannot attack a "
                        f"shard of the points; shard with backend='swtf'")
    batch_size = attack_kwargs.get("batch_size", 256)
    clean = ~is_adversarial(model, x, y, batch_size=batch_size)

    def correct(eps, seed):
        if eps == 0:
            return clean
        if backend == "cleverhans":
            return ~_cleverhans_fooled(model, x, y, eps, seed, attack_kwargs)
        seeded = {"seed": seed} if attack in RANDOMIZED_ATTACKS else {}
        shard = {"first_index": first_index} if first_index and attack in RANDOMIZED_ATTACKS else {}
        x_adv = ATTACKS[attack](model, x, y, eps, **seeded, **shard, **attack_kwargs)
        return ~is_adversarial(model, x_adv, y, batch_size=batch_size)

    per_eps = []
    for eps in eps_grid:
        per_eps.append([[bool(c) for c in correct(eps, s)] for s in seeds])
        if progress is not None:
            progress(eps, float(np.mean(per_eps[-1])) if len(y) else float("nan"))
    return {"eps": eps_grid, "seeds": seeds, "correct": per_eps}


def curve_from_outcomes(outcomes, *, attack, backend, settings):
    """The curve of `robustness_curve` from `point_outcomes` (possibly shards' outcomes concatenated)."""
    def accuracy(correct):
        return float(1.0 - np.mean(~np.asarray(correct, bool))) if len(correct) else float("nan")

    points = len(outcomes["correct"][0][0])
    return {"attack": attack, "backend": backend, "settings": dict(settings), "points": points,
            "eps": list(outcomes["eps"]), "seeds": list(outcomes["seeds"]),
            "accuracy": [[accuracy(c) for c in per_seed] for per_seed in outcomes["correct"]],
            "correct": outcomes["correct"]}


def concatenate_outcomes(parts):
    """The outcomes of consecutive shards of a point set, joined into those of the whole set."""
    first = parts[0]
    if any(part["eps"] != first["eps"] or part["seeds"] != first["seeds"] for part in parts):
        raise SwtfError("shards were attacked over different eps grids or seeds; rerun them with the same flags")
    return {"eps": first["eps"], "seeds": first["seeds"],
            "correct": [[sum((part["correct"][e][s] for part in parts), []) for s in range(len(first["seeds"]))]
                        for e in range(len(first["eps"]))]}


def robustness_curve(model, x, y, eps_grid, *, attack="pgd", seeds=(0,), backend="swtf", progress=None,
                     **attack_kwargs):
    """Accuracy under `attack` at every eps of `eps_grid` and every seed, on exactly the points `x`, `y`.

    Args:
      model: a Keras model producing logits.
      x, y: the test points (inputs in the attack's `clip` box, integer labels).
      eps_grid: radii, each >= 0; 0 gives the clean accuracy.
      attack: a name in `swtf.attack.ATTACKS`.
      seeds: seeds of the random starts, one run each. Deterministic attacks (fgsm, bim, mim) take one seed.
      backend: "swtf" or "cleverhans" (pgd only: untargeted, cross-entropy, restarts=1, step_size <= eps).
      progress: optional `progress(eps, accuracy)`, called as each radius is done (accuracy over seeds).
      **attack_kwargs: passed to the attack (norm, steps, restarts, step_size, batch_size, ...).

    Returns:
      {"attack", "backend", "settings": attack_kwargs, "points": N, "eps": [..], "seeds": [..],
       "accuracy": [[accuracy for each seed] for each eps], "correct": per point, as in `point_outcomes`}.
    """
    outcomes = point_outcomes(model, x, y, eps_grid, attack=attack, seeds=seeds, backend=backend, progress=progress,
                              **attack_kwargs)
    return curve_from_outcomes(outcomes, attack=attack, backend=backend, settings=attack_kwargs)


def robustness_curves(models, x, y, eps_grid, *, progress=None, **kwargs):
    """`robustness_curve` for each model of `{name: model}` on the same points; returns `{name: curve}`.

    `progress`: optional `progress(name, eps, accuracy)`, called as each model's radius is done.
    """
    def reporter(name):
        return None if progress is None else lambda eps, accuracy: progress(name, eps, accuracy)

    return {name: robustness_curve(model, x, y, eps_grid, progress=reporter(name), **kwargs)
            for name, model in models.items()}


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
