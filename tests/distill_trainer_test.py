"""The distillation trainer on digits: a distilled student keeps up with label training and imitates the
teacher; transfer data is unlabelled and masked."""

import numpy as np
import pytest

from swtf import data as datasets
from swtf import models, train
from swtf.distill import losses, trainer
from swtf.distill.augment import Augmentation
from swtf.errors import SwtfError

OPTIONS = train.TrainOptions(epochs=30, batch_size=64, patience=5, seed=0)
STUDENT = dict(name="scnn2", filters=(8, 16))


@pytest.fixture(scope="module")
def digits():
    return datasets.load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def teacher(digits):
    model = models.build("svhn_cnn", digits.input_shape, digits.num_classes, seed=0)
    train.fit(model, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=OPTIONS, quiet=True)
    return model


@pytest.fixture(scope="module")
def targets(teacher, digits):
    return trainer.teacher_targets(teacher, digits)


def student(digits):
    return models.build(STUDENT["name"], digits.input_shape, digits.num_classes, seed=0, filters=STUDENT["filters"])


def test_teacher_targets_are_the_teachers_logits(teacher, digits, targets):
    np.testing.assert_allclose(targets.logits, train.predict_logits(teacher, digits.x_train), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(targets.y, digits.y_train)


def test_distilled_student_keeps_up_with_label_training_and_imitates_teacher(teacher, digits, targets):
    on_labels = trainer.distill(student(digits), digits, targets, trainer.DistillSpec("labels"), OPTIONS, quiet=True)
    model = student(digits)
    distilled = trainer.distill(model, digits, targets, trainer.DistillSpec("soft_targets", temperature=2.0),
                                OPTIONS, quiet=True)
    assert distilled["test_accuracy"] >= on_labels["test_accuracy"] - 0.03
    assert distilled["val_accuracy"] >= on_labels["val_accuracy"] - 0.03
    # Agreement recomputed from both models' predictions, and most validation points agree.
    agree = np.mean(np.argmax(train.predict_logits(model, digits.x_val), 1)
                    == np.argmax(train.predict_logits(teacher, digits.x_val), 1))
    assert distilled["teacher_agreement"] == pytest.approx(agree)
    assert agree > 0.8
    assert distilled["test_accuracy"] == pytest.approx(train.accuracy(model, digits.x_test, digits.y_test))


def test_online_targets_train_a_student_that_imitates_teacher(teacher, digits, targets):
    spec = trainer.DistillSpec("hinton", temperature=4.0, alpha=0.9, targets="online",
                               augmentation=Augmentation(max_shift=1))
    result = trainer.distill(student(digits), digits, targets, spec, OPTIONS, teacher=teacher, quiet=True)
    assert result["teacher_agreement"] > 0.8


def test_online_loss_runs_teacher_on_the_augmented_batch(teacher, digits):
    spec = trainer.DistillSpec("logits", targets="online", augmentation=Augmentation(max_shift=2))
    loss_fn = trainer.distillation_loss_fn(spec, teacher, seed=5)
    model = student(digits)
    x, y = digits.x_val[:32], digits.y_val[:32]
    augmented = spec.augmentation(x, np.array([5, 9], np.int64))
    expected = np.mean((train.predict_logits(teacher, augmented.numpy()) - model(augmented).numpy()) ** 2)
    assert float(loss_fn(model, (x, y), np.int64(9))) == pytest.approx(expected, rel=1e-4)


def test_transfer_data_is_unlabelled_and_skipped_by_label_training(teacher, digits):
    transfer = digits.x_test[:50]
    targets = trainer.teacher_targets(teacher, digits, transfer_x=transfer)
    n = len(digits.x_train)
    assert np.all(targets.y[n:] == losses.UNLABELLED) and len(targets.y) == n + 50
    np.testing.assert_allclose(targets.logits[n:], train.predict_logits(teacher, transfer), rtol=1e-5, atol=1e-5)
    x, y = trainer.training_arrays(trainer.DistillSpec("labels"), targets)
    assert len(x) == len(y) == n and y.min() >= 0
    x, y, logits = trainer.training_arrays(trainer.DistillSpec("hinton"), targets)
    assert len(x) == len(logits) == n + 50


def test_transfer_images_of_another_shape_are_refused(teacher, digits):
    with pytest.raises(SwtfError, match="transfer images"):
        trainer.teacher_targets(teacher, digits, transfer_x=np.zeros((3, 4, 4, 1), np.float32))


def test_bad_spec_is_refused():
    with pytest.raises(SwtfError, match="method"):
        trainer.DistillSpec("kl")
    with pytest.raises(SwtfError, match="temperature"):
        trainer.DistillSpec("soft_targets", temperature=0.0)
