"""Per-point certification results of one model and their summary, cross-checked for soundness.

`certify_points` computes, for the same points: the prediction (the network's float64 reference
evaluation, the one `certified_radius` uses), the certified radius, whether the point is certified at
`eps` (its margin bounds at `eps` are all positive), optionally an exact MILP verdict at `eps`, and
optionally PGD at `eps` (an empirical upper bound on robust accuracy). Any contradiction between a
proof and a found attack is a soundness bug and raises `SoundnessError` (not a user error: it must crash
loudly, with a traceback).
"""

import time

import keras
import numpy as np

from swtf.certify import api
from swtf.certify.exact import verify_exact
from swtf.certify.network import forward
from swtf.certify.bracket import radius_bracket
from swtf.certify.radius import DEFAULT_TIMEOUT, verified_at

COLUMNS = ("index", "label", "predicted", "radius", "attack_radius", "certified", "seconds", "pgd_attacked", "exact")
PGD_STEPS = 40
PGD_RESTARTS = 2


class SoundnessError(RuntimeError):
    """A point proven robust was attacked successfully: a bug in a certifier, never bad input."""


def _pgd_attacked(model, network, x, y, eps, norm, seed, first_index):
    """(N,) bools: PGD found a point the Keras model misclassifies; (N,) bools: float64 agrees; or (None, None)."""
    try:
        from swtf import attack
    except ImportError:
        return None, None
    if not isinstance(model, keras.Model):
        return None, None
    x_adv = attack.pgd(model, x.astype(np.float32), y, eps, norm=norm, steps=PGD_STEPS, restarts=PGD_RESTARTS,
                       seed=seed, first_index=first_index)
    attacked = attack.is_adversarial(model, x_adv, y)
    logits = forward(network, x_adv)
    reference = np.argmax(logits, axis=1) != y
    return attacked, attacked & reference


def _check_soundness(name, method, eps, certified, confirmed_attacks, exact):
    """Raises `SoundnessError` where a proof and an attack disagree about the same point."""
    statuses = [r.status for r in exact] if exact is not None else [""] * len(certified)
    clashes = []
    for n, status in enumerate(statuses):
        if certified[n] and confirmed_attacks is not None and confirmed_attacks[n]:
            clashes.append(f"point {n}: {method} certifies it but PGD misclassifies a point of its ball")
        if certified[n] and status == "counterexample":
            clashes.append(f"point {n}: {method} certifies it but the MILP found a counterexample")
        if status == "certified" and confirmed_attacks is not None and confirmed_attacks[n]:
            clashes.append(f"point {n}: the MILP certifies it but PGD misclassifies a point of its ball")
    if clashes:
        raise SoundnessError(f"soundness bug on model {name!r} at eps {eps:g}: " + "; ".join(clashes))


def certify_points(model, x, y, *, name, eps, norm, method, max_radius, exact_time_limit=0.0, seed=0,
                   first_index=0, timeout_per_point=DEFAULT_TIMEOUT):
    """Certifies one model on points `x`, `y`; returns (rows, summary).

    Args:
      model: a Keras model (PGD needs one) or a SavedModel path / `Network`.
      x, y: the points and labels; name: the model's name in messages.
      eps, norm, method, max_radius, timeout_per_point: as for `swtf.certify.certified_radius` (method
        'bab': complete verification, at eps too).
      exact_time_limit: seconds per point for `verify_exact` at `eps` (0: skip; L-inf only).
      seed: PGD's seed.
      first_index: `x` is the points first_index.. of a larger set (a shard): rows carry those indices and
        PGD starts each point where it starts when the whole set is certified.

    Returns:
      rows: one dict per point with `COLUMNS` ('seconds' is the point's share of the batched time;
        'attack_radius' the distance of the nearest adversarial example PGD found, `radius_bracket`'s).
      summary: clean and certified accuracy at eps, mean radius (misclassified points count 0), median
        radius, PGD accuracy (None without a Keras model), exact MILP counts, seconds.
    """
    network = api.as_network(model)
    start = time.perf_counter()
    predicted = np.argmax(forward(network, x), axis=1)
    bracket = radius_bracket(model, x, y, norm=norm, method=method, max_radius=max_radius, seed=seed,
                             timeout_per_point=timeout_per_point)
    clip = api.check_options(x, norm, "crown", (0.0, 1.0))
    certified = verified_at(model, api.verifier_for(network), x, y, np.full(len(x), float(eps)), norm=norm,
                            method=method, clip=clip, timeout_per_point=timeout_per_point)[0]
    certify_seconds = time.perf_counter() - start
    exact = verify_exact(model, x, y, eps, time_limit=exact_time_limit) if exact_time_limit > 0 else None
    attacked, confirmed = _pgd_attacked(model, network, x, y, eps, norm, seed, first_index)
    _check_soundness(name, method, eps, certified, confirmed, exact)
    rows = [{"index": first_index + n, "label": int(y[n]), "predicted": int(predicted[n]),
             "radius": float(bracket.certified[n]), "attack_radius": float(bracket.attack[n]),
             "certified": bool(certified[n]), "seconds": certify_seconds / max(len(x), 1),
             "pgd_attacked": None if attacked is None else bool(attacked[n]),
             "exact": None if exact is None else exact[n].status} for n in range(len(x))]
    summary = summarise_points(rows, name=name, method=method, norm=norm, eps=eps,
                               seconds=time.perf_counter() - start, certify_seconds=certify_seconds,
                               exact_time_limit=exact_time_limit)
    return rows, summary


def summarise_points(rows, *, name, method, norm, eps, seconds, certify_seconds, exact_time_limit=0.0):
    """The summary of `certify_points` from its rows (those of one run, or of its shards concatenated).

    Clean and certified accuracy at eps, mean radius (misclassified points count 0), median radius, median
    attack radius (inf when PGD broke fewer than half the points), PGD
    accuracy (None without a Keras model), exact MILP counts (where `exact_time_limit` > 0), seconds.
    """
    predicted = np.array([row["predicted"] for row in rows])
    labels = np.array([row["label"] for row in rows])
    radius = np.array([row["radius"] for row in rows], np.float64)
    attacked = None if not rows or rows[0]["pgd_attacked"] is None else np.array([r["pgd_attacked"] for r in rows])
    summary = {
        "model": name, "method": method, "norm": norm, "eps": eps, "points": len(rows),
        "clean_accuracy": float(np.mean(predicted == labels)),
        "certified_accuracy": float(np.mean(np.array([row["certified"] for row in rows], bool))),
        "mean_radius": float(np.mean(radius)), "median_radius": float(np.median(radius)),
        "median_attack_radius": float(np.median([row.get("attack_radius", np.nan) for row in rows]))
        if rows else np.nan,
        "pgd_accuracy": None if attacked is None else float(np.mean(~attacked)),
        "seconds": seconds, "certify_seconds": certify_seconds,
    }
    if exact_time_limit > 0:
        summary["exact"] = {status: sum(row["exact"] == status for row in rows)
                            for status in ("certified", "counterexample", "unknown")}
        summary["exact_time_limit"] = exact_time_limit
    return summary
