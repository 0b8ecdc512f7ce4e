"""The factors study: train every sweep member, pick temperatures on validation, summarise over seeds.

`run_member` is the unit of work: it takes one `SweepMember` and the shared `StudyContext` and returns
that student's result row, so a sweep can be split into shards or run as remote tasks and its rows
concatenated. `mark_selected` and `summarise` only read rows.
"""

import dataclasses

import numpy as np

from swtf import models
from swtf.distill import temperature, trainer
from swtf.errors import SwtfError

ROW_FIELDS = ("student", "architecture", "params", "method", "temperature", "seed", "val_accuracy",
              "test_accuracy", "teacher_agreement", "best_epoch", "epochs_trained", "train_seconds", "selected")
SUMMARY_FIELDS = ("student", "architecture", "params", "method", "seeds", "temperature_mean",
                  "val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean", "test_accuracy_std",
                  "teacher_agreement_mean", "teacher_agreement_std")


@dataclasses.dataclass(frozen=True)
class StudyContext:
    """What every member shares: data, the teacher's targets, training options and the base `DistillSpec`.

    `spec` fixes what members do not vary (alpha, static or online targets, augmentation); each member sets
    its own method and temperature. `teacher` is needed for online targets only.
    """

    data: object
    targets: trainer.TeacherTargets
    spec: trainer.DistillSpec
    options: object
    teacher: object = None
    quiet: bool = True


def build_student(architecture, hparams, data, seed):
    """The zoo student of a sweep member, its initial weights seeded by `seed`."""
    return models.build(architecture, data.input_shape, data.num_classes, seed=seed, **dict(hparams))


def check_students(students, data):
    """Builds each `(architecture, hparams)` once, so a bad hyper-parameter fails before any training.

    Returns the parameter count of each student.
    """
    return {student: models.count_params(build_student(*student, data, seed=0)) for student in dict.fromkeys(students)}


def run_member(member, context):
    """Trains the student of `member` and returns its result row (see `ROW_FIELDS`)."""
    student = build_student(member.architecture, member.hparams, context.data, member.seed)
    spec = dataclasses.replace(context.spec, method=member.method,
                               temperature=(context.spec.temperature if member.temperature is None
                                            else member.temperature))
    options = dataclasses.replace(context.options, seed=member.seed)
    name = f"{member.student} {member.method}" + (f" T={member.temperature:g}" if member.temperature else "")
    metrics = trainer.distill(student, context.data, context.targets, spec, options, teacher=context.teacher,
                              name=name, quiet=context.quiet)
    return {"student": member.student, "architecture": member.architecture,
            "params": models.count_params(student), "method": member.method, "temperature": member.temperature,
            "seed": member.seed, **metrics}


def _group(rows, keys):
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


def mark_selected(rows):
    """Copies of `rows` with "selected": per (student, method, seed), the validation-best temperature.

    Rows of methods without a temperature are always selected.
    """
    rows = [dict(row, selected=False) for row in rows]
    for group in _group(rows, ("student", "method", "seed")).values():
        group[temperature.select_temperature(group)]["selected"] = True
    return rows


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(rows, by=("student", "method")):
    """Mean and sample standard deviation over seeds of each group of `rows` (see `SUMMARY_FIELDS`).

    Pass the selected rows with `by=("student", "method")` for the study's table (one entry per student and
    method, temperatures chosen on validation), or every row with `by=("student", "method", "temperature")`
    for accuracy against temperature.
    """
    if not rows:
        raise SwtfError("no study results to summarise; the sweep trained no student")
    summary = []
    for key, group in _group(rows, by).items():
        entry = dict(zip(by, key))
        entry.update(architecture=group[0]["architecture"], params=group[0]["params"], seeds=len(group))
        temperatures = [r["temperature"] for r in group if r["temperature"] is not None]
        entry["temperature_mean"] = float(np.mean(temperatures)) if temperatures else None
        for metric in ("val_accuracy", "test_accuracy", "teacher_agreement"):
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = _mean_std([r[metric] for r in group])
        summary.append(entry)
    return summary
