"""The study's answer: is the shallow student more certifiably robust than its teacher?

Compared on the same test points: mean certified radius (a misclassified point counts as radius 0),
certified accuracy at the study's eps, clean accuracy and parameter count. The difference in mean radius
gets a paired bootstrap confidence interval over test points; the verdict only claims a difference when
the interval excludes zero, and names the confounds (clean accuracy, size) next to the claim.
"""

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
ACCURACY_CONFOUND = 0.02  # clean-accuracy gap (absolute) above which the report flags it next to the claim


def paired_bootstrap_interval(a, b, *, samples=BOOTSTRAP_SAMPLES, confidence=CONFIDENCE, seed=0):
    """Percentile interval of mean(a - b) when test points are resampled with replacement (paired)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def model_summary(radii, eps, clean_correct, params):
    """Mean radius (misclassified = 0), certified accuracy at eps, clean accuracy, parameters."""
    radii = np.where(clean_correct, np.asarray(radii, dtype=float), 0.0)
    return {"mean_radius": float(radii.mean()), "certified_accuracy": float(np.mean(radii >= eps)),
            "clean_accuracy": float(np.mean(clean_correct)), "params": int(params)}


def compare(teacher, student, teacher_radii, student_radii, eps, *, seed=0):
    """The verdict row for one (teacher, student) pair; `*_radii` already count misclassified points as 0."""
    low, high = paired_bootstrap_interval(student_radii, teacher_radii, seed=seed)
    difference = student["mean_radius"] - teacher["mean_radius"]
    if low > 0:
        answer = "yes"
    elif high < 0:
        answer = "no (less robust)"
    else:
        answer = "no significant difference"
    confounds = []
    gap = student["clean_accuracy"] - teacher["clean_accuracy"]
    if abs(gap) > ACCURACY_CONFOUND:
        confounds.append(f"the student's clean accuracy is {abs(gap) * 100:.1f} points "
                         f"{'higher' if gap > 0 else 'lower'} than the teacher's")
    ratio = student["params"] / max(teacher["params"], 1)
    if ratio < 0.5 or ratio > 2:
        confounds.append(f"the student has {ratio:.2f}x the teacher's parameters")
    return {"answer": answer, "mean_radius_difference": difference, "interval": [low, high],
            "confidence": CONFIDENCE, "confounds": confounds}


def sentence(teacher_name, student_name, row, eps, norm_label="L∞"):
    """The verdict in one sentence, confounds attached."""
    low, high = row["interval"]
    head = {
        "yes": f"Yes: the shallow student {student_name} is more certifiably robust than {teacher_name}",
        "no (less robust)": f"No: the shallow student {student_name} is less certifiably robust than {teacher_name}",
        "no significant difference": (f"Not shown: the shallow student {student_name} and {teacher_name} do not "
                                      f"differ significantly in certified robustness"),
    }[row["answer"]]
    text = (f"{head} (mean {norm_label} radius difference {row['mean_radius_difference']:+.4f}, "
            f"{row['confidence'] * 100:.0f}% bootstrap interval [{low:+.4f}, {high:+.4f}] over test points; "
            f"certified at eps={eps:g}).")
    if row["confounds"]:
        text += " Caution: " + "; ".join(row["confounds"]) + "."
    return text
