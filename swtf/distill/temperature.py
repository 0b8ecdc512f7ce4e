"""Ranging the teacher's temperature: one student per temperature, the temperature chosen on validation.

The original study trains a student against `softmax(teacher_logits / T)` for a range of T and keeps the
best. Here "best" is the highest validation accuracy (ties go to the temperature listed first); the test
accuracy of every temperature is reported alongside, never used to choose.
"""

import dataclasses

import numpy as np

from swtf.distill import trainer
from swtf.errors import SwtfError


def select_temperature(rows):
    """Index of the row with the highest "val_accuracy" (the first such row on ties)."""
    if not rows:
        raise SwtfError("no temperatures to select from; pass at least one with --temperatures")
    return int(np.argmax([row["val_accuracy"] for row in rows]))


def range_temperatures(build_student, data, targets, spec, temperatures, options, *, teacher=None, quiet=False):
    """Distils one student per temperature with `spec` (its method must use a temperature).

    Args:
      build_student: a function `() -> LayerStack` returning a fresh student (same seed each call, so the
        temperatures differ in nothing else).
      data, targets, options, teacher, quiet: as for `trainer.distill`.
      spec: the `DistillSpec` whose `temperature` is replaced by each of `temperatures`.
      temperatures: the temperatures to try.

    Returns:
      `(rows, best_index, best_student)`: one metrics row per temperature (with its "temperature"), the
      index of the validation-selected row, and that row's trained student.
    """
    if spec.method not in trainer.TEMPERATURE_METHODS:
        raise SwtfError(f"method {spec.method!r} has no temperature; range temperatures with one of "
                        f"{', '.join(trainer.TEMPERATURE_METHODS)}")
    rows, best_student = [], None
    for temperature in temperatures:
        student = build_student()
        metrics = trainer.distill(student, data, targets, dataclasses.replace(spec, temperature=temperature),
                                  options, teacher=teacher, name=f"distill T={temperature:g}", quiet=quiet)
        rows.append({"temperature": float(temperature), **metrics})
        if select_temperature(rows) == len(rows) - 1:
            best_student = student
    return rows, select_temperature(rows), best_student
