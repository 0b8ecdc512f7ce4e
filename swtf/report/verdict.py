"""The study's answer: is the shallow student more robust than its teacher, and is that the networks or the verifier?

Every number is on the same N test points (the study's certify and attack stages both use the first N).
Two bases, each a per-point radius compared student - teacher:

- "certified": the certified radius of the first bound method (a misclassified point counts as 0). A lower
  bound on each point's true robustness radius, so it mixes the network's robustness with the verifier's slack.
- "empirical": the attack radius, the smallest eps of the attack grid at which some attack run (PGD or APGD,
  any restart seed) broke the point (0 for a point misclassified clean). It is an upper bound on the true radius;
  a point never broken on the grid is capped at the grid's largest eps, so the empirical difference cannot see
  beyond that eps.

Per basis the mean difference gets a paired bootstrap (test points resampled with replacement, B draws): the
percentile interval, and the two-sided bootstrap p-value p = min(1, 2 min(share of draws <= 0, share >= 0)).
With several training seeds (each model trained once per seed, all on the same test points) the bootstrap is
hierarchical (`hierarchical_bootstrap_means`): a draw resamples the seeds, then within each drawn seed the
points, and averages the per-seed mean differences, so the interval covers training randomness too.
All claims of one report (pairs x bases) are Holm-corrected together (family-wise level 1 - CONFIDENCE); a
basis answers "yes" (student larger) or "no" (student smaller) only where its Holm-adjusted p is below that
level, else "inconclusive". The overall claim needs both bases to agree; where only the certified basis says
yes, the difference belongs to the verifier, and the sentence quotes each model's verifier gap
(mean attack radius - mean certified radius over the points the attack broke on the grid).
With one training seed the verdict does not cover training randomness, and the report says so.
"""

import numpy as np

from swtf.errors import SwtfError

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
FAMILY_LEVEL = 1.0 - CONFIDENCE  # Holm keeps the chance of any false claim in one report below this
ACCURACY_CONFOUND = 0.02  # clean-accuracy gap (absolute) above which the report flags it next to the claim
MIN_POINTS = 100  # below this many test points the report warns next to every answer
BASES = ("certified", "empirical")
NORM = "L∞"


def hierarchical_bootstrap_means(diff, samples, seed, chunk=256):
    """Bootstrap replicates of the mean over training seeds of the per-seed mean difference.

    `diff`: [seeds][points] per-point differences (student - teacher) of each training seed's pair, on the same
    points. Replicate b draws, per slot k of S, the points `points[b, k]` (N with replacement) and the seed
    `seeds[b, k]` (with replacement) and averages diff[seeds[b, k], points[b, k]] over points, then over the S
    slots. Both models of a pair share the drawn points (the difference is taken per point first). All point
    indices are drawn first, [samples, S, N], then the seed indices, [samples, S]; with one seed the point draws
    are those of the plain paired bootstrap, so the replicates are the same. Returns the `samples` replicates.
    """
    diff = np.asarray(diff, dtype=float)
    diff = diff[None] if diff.ndim == 1 else diff
    if diff.ndim != 2 or not diff.size:
        raise SwtfError(f"differences must be [seeds][points], got shape {diff.shape}")
    count, n = diff.shape
    rng = np.random.default_rng(seed)
    points = rng.integers(0, n, size=(samples, count, n))
    seeds = rng.integers(0, count, size=(samples, count)) if count > 1 else np.zeros((samples, 1), int)
    means = np.empty(samples)
    for begin in range(0, samples, chunk):  # [chunk, S, N] at a time: bounded memory for many points
        block = slice(begin, begin + chunk)
        means[block] = diff[seeds[block, :, None], points[block]].mean(axis=2).mean(axis=1)
    return means


def _bootstrap_means(a, b, samples, seed):
    """Means of (a - b) over `samples` paired resamplings of the points with replacement; for [seeds][points]
    inputs the hierarchical resampling of `hierarchical_bootstrap_means`."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.ndim == 2:
        return hierarchical_bootstrap_means(diff, samples, seed)
    rng = np.random.default_rng(seed)
    return diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)


def paired_bootstrap_interval(a, b, *, samples=BOOTSTRAP_SAMPLES, confidence=CONFIDENCE, seed=0):
    """Percentile interval of mean(a - b) when test points are resampled with replacement (paired); `a`, `b`
    per point, or [seeds][points] for the hierarchical bootstrap over training seeds and points."""
    means = _bootstrap_means(a, b, samples, seed)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_bootstrap_p_value(a, b, *, samples=BOOTSTRAP_SAMPLES, seed=0):
    """Two-sided bootstrap p-value of mean(a - b) = 0: twice the share of resampled means on the far side of 0
    (the smaller of share <= 0 and share >= 0), at most 1. Same draws as `paired_bootstrap_interval`."""
    means = _bootstrap_means(a, b, samples, seed)
    return float(min(1.0, 2.0 * min(np.mean(means <= 0), np.mean(means >= 0))))


def holm(p_values):
    """Holm's step-down adjusted p-values: with p sorted ascending, p~(i) = max_{j<=i} min(1, (m - j + 1) p(j)),
    returned in the input's order. Rejecting where p~ < level keeps the family-wise error below level."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted.tolist()


def attack_radii(correct, eps_grid, clean_correct):
    """Per point, the smallest eps of `eps_grid` at which the attack broke it under any seed; inf where no eps
    did, 0 where the point is misclassified clean. `correct`: [eps][seed][point] bools (the attack stage's)."""
    correct = np.asarray(correct, dtype=bool)
    eps = np.asarray(eps_grid, dtype=float)
    if correct.ndim != 3 or correct.shape[0] != len(eps):
        raise SwtfError(f"attack outcomes must be [eps][seed][point] over {len(eps)} eps, got shape {correct.shape}")
    order = np.argsort(eps, kind="stable")
    broken = ~correct[order].all(axis=1)  # [eps][point]: some seed misclassified the attacked point
    radii = np.where(broken.any(axis=0), eps[order][np.argmax(broken, axis=0)], np.inf)
    return np.where(np.asarray(clean_correct, dtype=bool), radii, 0.0)


def empirically_robust(correct, eps_grid, eps, clean_correct):
    """Per point: classified correctly clean and under the attack for every seed at `eps` (a grid eps)."""
    if eps not in list(eps_grid):
        raise SwtfError(f"the attack grid {list(eps_grid)} does not contain the study's eps {eps:g}; rerun the attack")
    at_eps = np.asarray(correct, dtype=bool)[list(eps_grid).index(eps)].all(axis=0)
    return at_eps & np.asarray(clean_correct, dtype=bool)


def model_summary(radii, eps, clean_correct, params):
    """Mean radius (misclassified = 0), certified accuracy at eps, clean accuracy, parameters, points."""
    radii = np.where(clean_correct, np.asarray(radii, dtype=float), 0.0)
    return {"mean_radius": float(radii.mean()), "certified_accuracy": float(np.mean(radii >= eps)),
            "clean_accuracy": float(np.mean(clean_correct)), "params": int(params), "points": len(radii)}


def empirical_summary(certified_radii, radii_under_attack, robust_at_eps, grid_max):
    """Empirical robust accuracy at the study's eps; mean attack radius (points never broken capped at the grid's
    largest eps); verifier gap = mean attack radius - mean certified radius over the points with a finite attack
    radius (those the attack broke on the grid, misclassified points included at 0 - 0); None if there are none."""
    certified_radii = np.asarray(certified_radii, dtype=float)
    broken = np.isfinite(radii_under_attack)
    gap = (float(np.mean(radii_under_attack[broken]) - np.mean(certified_radii[broken]))
           if broken.any() else None)
    return {"empirical_robust_accuracy": float(np.mean(robust_at_eps)),
            "mean_attack_radius": float(np.mean(np.minimum(radii_under_attack, grid_max))),
            "verifier_gap": gap, "points_broken": int(broken.sum())}


def confounds(teacher, student):
    """What else differs between the pair: clean accuracy on the compared points, and size."""
    found = []
    gap = student["clean_accuracy"] - teacher["clean_accuracy"]
    if abs(gap) > ACCURACY_CONFOUND:
        found.append(f"the student's clean accuracy on the {student['points']} attacked and certified points is "
                     f"{abs(gap) * 100:.1f} points {'higher' if gap > 0 else 'lower'} than the teacher's "
                     f"({student['clean_accuracy']:.3f} against {teacher['clean_accuracy']:.3f})")
    ratio = student["params"] / max(teacher["params"], 1)
    if ratio < 0.5 or ratio > 2:
        found.append(f"the student has {ratio:.2f}x the teacher's parameters")
    return found


def compare(teacher, student, teacher_radii, student_radii, *, basis, seed=0):
    """One basis's row for a (teacher, student) pair, before Holm: mean radius difference student - teacher,
    its bootstrap interval and p-value. `*_radii` are per point on the same points, or [seeds][points] (one row
    per training seed, the pair's models of that seed): then the difference is the mean over seeds and the
    bootstrap is hierarchical. `decide` sets the answer."""
    student_radii, teacher_radii = np.asarray(student_radii, float), np.asarray(teacher_radii, float)
    low, high = paired_bootstrap_interval(student_radii, teacher_radii, seed=seed)
    return {"basis": basis, "mean_radius_difference": float(np.mean(student_radii) - np.mean(teacher_radii)),
            "interval": [low, high], "confidence": CONFIDENCE,
            "training_seeds": 1 if student_radii.ndim == 1 else len(student_radii),
            "p_value": paired_bootstrap_p_value(student_radii, teacher_radii, seed=seed),
            "confounds": confounds(teacher, student)}


def decide(rows):
    """Holm-corrects the p-values of all rows together (one report's claims) and sets each row's answer."""
    for row, adjusted in zip(rows, holm([row["p_value"] for row in rows])):
        significant = adjusted < FAMILY_LEVEL
        row["p_holm"] = adjusted
        row["answer"] = ("yes" if row["mean_radius_difference"] > 0 else "no") if significant else "inconclusive"
    return rows


def overall_answer(answers):
    """The claim on both bases: theirs where they agree, else inconclusive (a missing basis counts as such)."""
    certified, empirical = answers.get("certified"), answers.get("empirical")
    return certified if certified == empirical and certified in ("yes", "no") else "inconclusive"


def _basis_phrase(row, method, attack):
    what = {"certified": f"{method} certified radius", "empirical": f"attack radius, {attack}"}[row["basis"]]
    finding = {"yes": "larger for the student", "no": "smaller for the student",
               "inconclusive": "no significant difference"}[row["answer"]]
    low, high = row["interval"]
    return (f"{row['basis'].capitalize()} basis ({what}): {finding}; mean {NORM} difference "
            f"{row['mean_radius_difference']:+.4f}, {row['confidence'] * 100:.0f}% bootstrap interval "
            f"[{low:+.4f}, {high:+.4f}], Holm-adjusted p{_p_text(row['p_holm'])}.")


def _p_text(p):
    """"=0.012", or "<0.0005" where no bootstrap draw crossed 0 (the resolution of B draws is 1/B)."""
    return f"<{1 / BOOTSTRAP_SAMPLES:g}" if p == 0 else f"={p:.3g}"


def sentence(teacher_name, student_name, rows, summaries, eps, method="crown", attack="PGD", seeds=1):
    """The pair's claim in words, one claim per sentence, each naming its basis first: the overall answer,
    each basis's finding, the sample, whose the difference is, confounds, warnings. `attack`: what the
    empirical basis's attack radius comes from; `seeds`: training seeds the rows bootstrap over."""
    by_basis = {row["basis"]: row for row in rows}
    answer = overall_answer({basis: row["answer"] for basis, row in by_basis.items()})
    teacher, student = summaries[teacher_name], summaries[student_name]
    head = {"yes": f"Yes: {student_name} is more robust than {teacher_name}, certified and under attack.",
            "no": f"No: {student_name} is less robust than {teacher_name}, certified and under attack.",
            "inconclusive": f"Inconclusive: the certified and the empirical basis do not both show that "
                            f"{student_name} differs in robustness from {teacher_name}."}[answer]
    parts = [head] + [_basis_phrase(by_basis[b], method, attack) for b in BASES if b in by_basis]
    trained = "1 training seed" if seeds == 1 else f"{seeds} training seeds (hierarchical bootstrap)"
    parts.append(f"Sample: the same {student['points']} test points for both models, {trained}.")
    if "empirical" not in by_basis:
        parts.append("Empirical basis: not measured, because the attack stage has not run.")
    elif by_basis["certified"]["answer"] == "yes" and by_basis["empirical"]["answer"] != "yes":
        under_attack = {"no": "the student is less robust",
                        "inconclusive": "they are not shown to differ"}[by_basis["empirical"]["answer"]]
        parts.append(f"Verifier: the certified difference belongs to the verifier, not the networks, "
                     f"since under attack {under_attack}.")
        parts.append(f"Verifier gap ({method}; mean attack radius - mean certified radius on the points the "
                     f"attack broke): {_gap(teacher)} for {teacher_name}, {_gap(student)} for {student_name}.")
    parts += [f"Caution: {found}." for found in by_basis["certified"]["confounds"]]
    if student["points"] < MIN_POINTS:
        parts.append(f"Warning: only {student['points']} test points (fewer than {MIN_POINTS}); treat this as a "
                     f"sketch.")
    return answer, " ".join(parts)


def _gap(summary):
    gap = summary.get("verifier_gap")
    return "undefined (no point broken)" if gap is None else f"{gap:.4f}"
