"""Training a student from a teacher with `swtf.train.fit` and scoring it against labels and the teacher.

Targets are either *static* (the teacher's logits on the training inputs, computed once and batched with
them) or *online* (each step the batch is augmented and the teacher is run on the augmented images, so the
student sees new inputs every epoch). Early stopping is the loop's: validation accuracy on true labels.

Transfer data (extra inputs without labels, label `UNLABELLED`) joins the training set of every
teacher-driven method. The soft terms use all examples; the hard-label term of `hinton_kd` masks the
unlabelled ones. The `labels` baseline trains on the labelled examples only: it has no teacher to ask.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from swtf import train
from swtf.distill import losses
from swtf.distill.augment import Augmentation
from swtf.errors import SwtfError

METHODS = ("labels", "logits", "soft_targets", "hinton")
TARGETS = ("static", "online")
TEMPERATURE_METHODS = ("soft_targets", "hinton")  # methods whose loss depends on the temperature


@dataclasses.dataclass(frozen=True)
class DistillSpec:
    """How a student learns: the loss (`method`, `temperature`, `alpha`) and where its targets come from.

    Methods: "labels" (cross-entropy on true labels, no teacher), "logits" (`losses.matching_logits`),
    "soft_targets" (`losses.soft_target_cross_entropy`), "hinton" (`losses.hinton_kd`).
    """

    method: str = "soft_targets"
    temperature: float = 1.0
    alpha: float = 0.9
    targets: str = "static"
    augmentation: Augmentation = Augmentation()

    def __post_init__(self):
        if self.method not in METHODS:
            raise SwtfError(f"unknown distillation method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.targets not in TARGETS:
            raise SwtfError(f"distillation targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")
        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise SwtfError(f"temperature must be a positive number, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise SwtfError(f"alpha (weight of the soft term) must be in [0, 1], got {self.alpha}")

    @property
    def uses_teacher(self):
        return self.method != "labels"


@dataclasses.dataclass(frozen=True)
class TeacherTargets:
    """The training inputs (labelled, then transfer), their labels (-1 for transfer) and the teacher's view.

    `logits` are the teacher's logits on `x` (the static targets); `val_logits` its logits on the
    validation split, against which teacher agreement is measured.
    """

    x: np.ndarray
    y: np.ndarray
    logits: np.ndarray
    val_logits: np.ndarray
    num_labelled: int


def teacher_targets(teacher, data, transfer_x=None):
    """Runs the teacher once over the training (and transfer) inputs and the validation split."""
    x, y = data.x_train, data.y_train
    if transfer_x is not None and len(transfer_x):
        if tuple(transfer_x.shape[1:]) != tuple(data.input_shape):
            raise SwtfError(f"transfer images have shape {transfer_x.shape[1:]} but the data set's are "
                            f"{data.input_shape}; use transfer data of the same image size")
        x = np.concatenate([x, transfer_x.astype(np.float32)])
        y = np.concatenate([y, np.full(len(transfer_x), losses.UNLABELLED, y.dtype)])
    return TeacherTargets(x=x, y=y, logits=train.predict_logits(teacher, x),
                          val_logits=train.predict_logits(teacher, data.x_val), num_labelled=len(data.x_train))


def student_objective(spec, teacher_logits, student_logits, labels):
    """The loss named by `spec.method` on one batch (batch mean)."""
    if spec.method == "labels":
        return losses.masked_cross_entropy(labels, student_logits)
    if spec.method == "logits":
        return losses.matching_logits(teacher_logits, student_logits)
    if spec.method == "soft_targets":
        return losses.soft_target_cross_entropy(teacher_logits, student_logits, spec.temperature)
    return losses.hinton_kd(teacher_logits, student_logits, labels, spec.temperature, spec.alpha)


def distillation_loss_fn(spec, teacher=None, seed=0):
    """A `loss_fn(model, batch, step)` for `swtf.train.fit`.

    Static targets expect batches `(x, y, teacher_logits)`; online targets expect `(x, y)`, augment `x` with
    the seed pair `(seed, step)` and run `teacher` on the augmented images.
    """
    if spec.targets == "static" or not spec.uses_teacher:
        def static_loss(model, batch, step):
            del step
            x, y = batch[0], batch[1]
            teacher_logits = batch[2] if spec.uses_teacher else None
            return student_objective(spec, teacher_logits, model(x, training=True), y)
        return static_loss
    if teacher is None:
        raise SwtfError("online distillation targets need the teacher model; pass teacher=")

    def online_loss(model, batch, step):
        x, y = batch[0], batch[1]
        x = spec.augmentation(x, tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)]))
        return student_objective(spec, teacher(x, training=False), model(x, training=True), y)
    return online_loss


def training_arrays(spec, targets):
    """The arrays `fit` batches for `spec`: labelled data only for "labels", teacher logits for static."""
    if not spec.uses_teacher:
        n = targets.num_labelled
        return targets.x[:n], targets.y[:n]
    if spec.targets == "static":
        return targets.x, targets.y, targets.logits
    return targets.x, targets.y


def teacher_agreement(student_logits, teacher_logits):
    """Fraction of inputs on which the student's top-1 class is the teacher's."""
    return float(np.mean(np.argmax(student_logits, axis=1) == np.argmax(teacher_logits, axis=1)))


def distill(student, data, targets, spec, options, *, teacher=None, name="distill", log_dir=None, quiet=False,
            callbacks=None):
    """Trains `student` in place under `spec`; returns its metrics (validation, test, teacher agreement).

    Args:
      student: a fresh zoo `LayerStack` for the data's input shape and classes.
      data: the `swtf.data.Dataset`; its validation split drives early stopping, its test split is only
        reported.
      targets: `TeacherTargets` of the data (computed once, shared by every student of a run).
      spec: `DistillSpec`.
      options: `swtf.train.TrainOptions`.
      teacher: the teacher model, needed for online targets.
      name, log_dir, quiet, callbacks: passed to `swtf.train.fit`.
    """
    loss_fn = distillation_loss_fn(spec, teacher, seed=options.seed)
    start = time.perf_counter()
    history = train.fit(student, training_arrays(spec, targets), (data.x_val, data.y_val), loss_fn=loss_fn,
                        options=options, name=name, log_dir=log_dir, quiet=quiet, callbacks=callbacks)
    seconds = time.perf_counter() - start
    val_logits = train.predict_logits(student, data.x_val)
    return {
        "val_accuracy": float(np.mean(np.argmax(val_logits, axis=1) == data.y_val)),
        "test_accuracy": train.accuracy(student, data.x_test, data.y_test),
        "teacher_agreement": teacher_agreement(val_logits, targets.val_logits),
        "best_epoch": history.best_epoch,
        "epochs_trained": len(history.epochs),
        "train_seconds": seconds,
    }
