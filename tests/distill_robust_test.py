"""Tests of robust students: the spec's schedules in steps, and on digits, the re-trained and the straight
robust students certify more test points (CROWN, float64) than the plain distilled student."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from swtf import certify, data, models, train
from swtf.distill import robust, trainer
from swtf.errors import SwtfError
from swtf.train import certified

STUDENT = ("shallow_cnn", {"filters": [16], "dense": [100]})


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def distilled(digits):
    """A shallow student distilled (soft targets, T = 4) from a briefly trained convex_cnn teacher."""
    options = train.TrainOptions(epochs=12, batch_size=64, learning_rate=3e-3)
    teacher = models.build("convex_cnn", digits.input_shape, digits.num_classes, seed=0)
    train.fit(teacher, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options, quiet=True)
    student = models.build(STUDENT[0], digits.input_shape, digits.num_classes, seed=0, **STUDENT[1])
    trainer.distill(student, digits, trainer.teacher_targets(teacher, digits),
                    trainer.DistillSpec(method="soft_targets", temperature=4.0), options, quiet=True)
    return student


def test_spec_loss_ramps_eps_in_optimizer_steps(digits):
    """With eps 0.1 x 1.1, 1 warm-up epoch and a 2-epoch ramp of 10 steps each, the robust term starts at
    step 10 and the loss at step 20 is the kappa 0.5 mix at eps 0.11 (checked against explicit schedules)."""
    spec = robust.RobustSpec(eps=0.1, warmup_epochs=1, ramp_epochs=2)
    model = models.build(STUDENT[0], digits.input_shape, digits.num_classes, seed=0, **STUDENT[1])
    batch = (tf.constant(digits.x_test[:32]), tf.constant(digits.y_test[:32]))
    loss_fn = spec.loss_fn(steps_per_epoch=10)
    clean = float(train.cross_entropy_loss(model, batch, 0))
    np.testing.assert_allclose(float(loss_fn(model, batch, tf.constant(10))), clean, rtol=1e-6)
    fixed = certified.certified_loss("ibp", lambda s: tf.constant(0.11), lambda s: tf.constant(0.5))
    np.testing.assert_allclose(float(loss_fn(model, batch, tf.constant(30))), float(fixed(model, batch, 0)),
                               rtol=1e-5)
    assert float(loss_fn(model, batch, tf.constant(20))) > clean


def test_spec_refuses_bad_values():
    with pytest.raises(SwtfError, match="method"):
        robust.RobustSpec(method="crown")
    with pytest.raises(SwtfError, match="train_eps_factor"):
        robust.RobustSpec(train_eps_factor=0.9)


SPEC = robust.RobustSpec(eps=0.1, points=100, warmup_epochs=0, ramp_epochs=3)
OPTIONS = train.TrainOptions(epochs=6, batch_size=32, learning_rate=3e-3)


def _check_more_certified(digits, distilled, model, metrics):
    plain = robust.robust_metrics(distilled, digits, SPEC)
    x, y = digits.x_test[:SPEC.points], digits.y_test[:SPEC.points]
    independent = np.mean(np.all(certify.margin_bounds(model, x, y, SPEC.eps, method="crown") > 0, axis=1))
    assert metrics["certified_accuracy"] == independent
    assert metrics["certified_accuracy"] > plain["certified_accuracy"] + 0.1, (metrics, plain)
    assert metrics["test_accuracy"] > 0.75


def test_retrained_student_certifies_more_than_the_distilled_student(digits, distilled):
    weights = [w.copy() for w in distilled.get_weights()]
    model, metrics = robust.retrained_student(distilled, digits, SPEC, OPTIONS, quiet=True)
    for w, original in zip(distilled.get_weights(), weights):
        np.testing.assert_array_equal(w, original)
    _check_more_certified(digits, distilled, model, metrics)


def test_straight_student_certifies_more_than_the_distilled_student(digits, distilled):
    model, metrics = robust.straight_student(*STUDENT, digits, dataclasses.replace(SPEC, warmup_epochs=1,
                                                                                  ramp_epochs=4),
                                             dataclasses.replace(OPTIONS, epochs=8), quiet=True)
    assert model.architecture == STUDENT[0] and model.hparams == STUDENT[1]
    _check_more_certified(digits, distilled, model, metrics)
