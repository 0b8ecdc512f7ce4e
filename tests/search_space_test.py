"""The student search space and the distillation hypermodel (budget, callbacks, returned metrics)."""

import keras
import keras_tuner
import numpy as np
import pytest

from swtf import data as datasets
from swtf import models, train
from swtf.distill import trainer
from swtf.errors import SwtfError
from swtf.search import hypermodel, space


@pytest.fixture(scope="module")
def digits():
    return datasets.load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def targets(digits):
    teacher = models.build("snn", digits.input_shape, digits.num_classes, seed=0, width=32)
    train.fit(teacher, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val),
              options=train.TrainOptions(epochs=5), quiet=True)
    return trainer.teacher_targets(teacher, digits)


def hyperparameters(**values):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


@pytest.mark.parametrize("values,expected", [
    (dict(family="snn", snn_width=40), ("snn", {"width": 40})),
    (dict(family="scnn1", scnn1_filters=6, scnn1_dense=0), ("scnn1", {"filters": 6, "dense": ()})),
    (dict(family="scnn2", scnn2_filters1=4, scnn2_filters2=9, scnn2_dense=64),
     ("scnn2", {"filters": (4, 9), "dense": (64,)})),
    (dict(family="shallow_cnn", shallow_cnn_convolutions=2, shallow_cnn_filters1=5, shallow_cnn_filters2=7,
          shallow_cnn_kernel_size=3, shallow_cnn_dense=20),
     ("shallow_cnn", {"filters": (5, 7), "kernel_size": 3, "dense": (20,)})),
])
def test_sample_student_reads_the_familys_values(values, expected):
    assert space.sample_student(hyperparameters(**values), space.FAMILY_SPACES) == expected


def random_student(family, rng):
    """Samples like a tuner: declare the space, draw each newly declared value at random, until stable."""
    hp, drawn = keras_tuner.HyperParameters(), set()
    while True:
        space.sample_student(hp, [family])
        fresh = [value for value in hp.space if value.name not in drawn]
        if not fresh:
            return space.sample_student(hp, [family])
        for value in fresh:
            hp.values[value.name] = value.random_sample(int(rng.integers(1 << 30)))
            drawn.add(value.name)


@pytest.mark.parametrize("family", sorted(space.FAMILY_SPACES))
def test_random_students_of_every_family_build_on_digits(digits, family):
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(8):
        architecture, hparams = random_student(family, rng)
        model = models.build(architecture, digits.input_shape, digits.num_classes, **hparams)
        assert architecture == family and model(digits.x_val[:2]).shape == (2, digits.num_classes)
        sizes.add(models.count_params(model))
    assert len(sizes) > 1


def test_unknown_family_is_refused():
    with pytest.raises(SwtfError, match="search families"):
        space.check_families(["resnet"])


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def test_fit_trains_calls_callbacks_and_returns_the_objective(digits, targets):
    options = train.TrainOptions(epochs=3, patience=3, seed=0)
    model_fn = hypermodel.DistillationHyperModel(digits, targets, trainer.DistillSpec(), options, ["snn"],
                                                 temperatures=[1.0, 2.0])
    hp = hyperparameters(family="snn", snn_width=16, temperature=2.0)
    model = model_fn.build(hp)
    recorder = EpochRecorder()
    result = model_fn.fit(hp, model, callbacks=[recorder], epochs=2)
    assert len(recorder.logs) == 2 and all("val_accuracy" in logs for logs in recorder.logs)
    assert result["val_accuracy"] == pytest.approx(max(logs["val_accuracy"] for logs in recorder.logs))
    assert result["val_accuracy"] == pytest.approx(train.accuracy(model, digits.x_val, digits.y_val))
    assert result["params"] == models.count_params(model)


def test_student_over_budget_scores_zero_untrained(digits, targets):
    options = train.TrainOptions(epochs=3, seed=0)
    model_fn = hypermodel.DistillationHyperModel(digits, targets, trainer.DistillSpec(), options, ["snn"],
                                                 max_params=100)
    hp = hyperparameters(family="snn", snn_width=16)
    model = model_fn.build(hp)
    before = [w.copy() for w in model.get_weights()]
    recorder = EpochRecorder()
    assert model_fn.fit(hp, model, callbacks=[recorder])["val_accuracy"] == 0.0
    assert recorder.logs == [{"val_accuracy": 0.0}]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
