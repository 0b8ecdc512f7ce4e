"""Temperature ranging picks the temperature on validation accuracy only."""

import numpy as np
import pytest

from swtf import data as datasets
from swtf import models, train
from swtf.distill import temperature, trainer
from swtf.errors import SwtfError


def test_select_temperature_uses_validation_not_test():
    rows = [{"temperature": 1.0, "val_accuracy": 0.80, "test_accuracy": 0.99},
            {"temperature": 2.0, "val_accuracy": 0.90, "test_accuracy": 0.70},
            {"temperature": 4.0, "val_accuracy": 0.90, "test_accuracy": 0.95}]
    assert temperature.select_temperature(rows) == 1  # highest validation, first of the tie


def test_select_temperature_needs_rows():
    with pytest.raises(SwtfError, match="temperatures"):
        temperature.select_temperature([])


def test_range_temperatures_on_digits_chooses_the_validation_argmax():
    digits = datasets.load_dataset("digits", seed=0)
    options = train.TrainOptions(epochs=8, batch_size=64, patience=3, seed=0)
    teacher = models.build("scnn1", digits.input_shape, digits.num_classes, seed=0, filters=16, dense=(64,))
    train.fit(teacher, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options, quiet=True)
    targets = trainer.teacher_targets(teacher, digits)

    def build_student():
        return models.build("snn", digits.input_shape, digits.num_classes, seed=0, width=16)

    temperatures = [0.5, 2.0, 20.0]
    rows, best, student = temperature.range_temperatures(
        build_student, digits, targets, trainer.DistillSpec("soft_targets"), temperatures, options, quiet=True)
    assert [r["temperature"] for r in rows] == temperatures
    assert best == int(np.argmax([r["val_accuracy"] for r in rows]))
    assert train.accuracy(student, digits.x_val, digits.y_val) == pytest.approx(rows[best]["val_accuracy"])
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    # The temperatures really train different students.
    assert len({(r["val_accuracy"], r["test_accuracy"], r["best_epoch"]) for r in rows}) > 1


def test_range_temperatures_refuses_methods_without_temperature():
    with pytest.raises(SwtfError, match="no temperature"):
        temperature.range_temperatures(None, None, None, trainer.DistillSpec("logits"), [1.0], None)
