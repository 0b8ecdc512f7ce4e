"""Robust students: certified training (IBP / CROWN-IBP, `swtf.train.certified`) of shallow students.

Two ways to a certifiably robust student of a given architecture:
  re-trained: a distilled student trained further with the certified loss on true labels
              (`retrained_student`);
  straight:   the same architecture trained from scratch with the certified loss (`straight_student`).
Both are scored like the plain distilled student (`robust_metrics`): clean validation and test accuracy,
and the fraction of the first `points` test images certified at `eps` by the engine in float64.
"""

import dataclasses
import math
import time

import keras
import numpy as np

from swtf import models, train
from swtf.errors import SwtfError
from swtf.train import certified


@dataclasses.dataclass(frozen=True)
class RobustSpec:
    """How to train for, and score, certified robustness at L-inf radius `eps` (in [0, 1] pixel units).

    Training uses eps * `train_eps_factor`, reached after `warmup_epochs` at eps 0 and a linear ramp of
    `ramp_epochs` (kappa 1 -> `kappa_final`, and for CROWN-IBP beta 1 -> 0). Scoring certifies the first
    `points` test images with `certify_method`; weights are selected by `select_method` certified
    validation accuracy.
    """

    eps: float = 0.1
    method: str = "ibp"
    train_eps_factor: float = 1.1
    kappa_final: float = 0.5
    warmup_epochs: int = 2
    ramp_epochs: int = 15
    points: int = 200
    certify_method: str = "crown"
    select_method: str = "ibp"

    def __post_init__(self):
        if self.method not in certified.METHODS:
            raise SwtfError(f"robust training method must be one of {', '.join(certified.METHODS)}, "
                            f"got {self.method!r}")
        if not (self.eps > 0 and np.isfinite(self.eps) and self.train_eps_factor >= 1):
            raise SwtfError(f"eps must be positive and train_eps_factor >= 1, got {self.eps}, "
                            f"{self.train_eps_factor}")
        if self.warmup_epochs < 0 or self.ramp_epochs < 0 or self.points < 1:
            raise SwtfError(f"warmup_epochs and ramp_epochs must be >= 0 and points >= 1, got "
                            f"{self.warmup_epochs}, {self.ramp_epochs}, {self.points}")

    def loss_fn(self, steps_per_epoch):
        """The certified `loss_fn` of this spec, its schedules counted in optimizer steps."""
        return certified.ramped_certified_loss(self.method, self.eps * self.train_eps_factor, self.kappa_final,
                                               self.warmup_epochs * steps_per_epoch, self.ramp_epochs * steps_per_epoch)


def robust_metrics(model, data, spec):
    """Clean validation / test accuracy and certified accuracy on the first `spec.points` test images."""
    x, y = data.x_test[:spec.points], data.y_test[:spec.points]
    return {
        "val_accuracy": train.accuracy(model, data.x_val, data.y_val),
        "test_accuracy": train.accuracy(model, data.x_test, data.y_test),
        "certified_accuracy": certified.certified_accuracy(model, x, y, spec.eps, method=spec.certify_method),
        "eps": spec.eps,
        "certified_points": len(x),
        "certify_method": spec.certify_method,
    }


def certified_fit(model, data, spec, options, *, name="robust", log_dir=None, quiet=False):
    """Trains `model` in place with `spec`'s certified loss on true labels; returns its `robust_metrics`.

    The weights of the epoch with the best certified validation accuracy are kept, and early stopping on it
    waits until the eps ramp has finished (`certified.certified_monitor`).
    """
    steps_per_epoch = math.ceil(len(data.x_train) / options.batch_size)
    start = time.perf_counter()
    history = train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val), options=options,
                        loss_fn=spec.loss_fn(steps_per_epoch), name=name, log_dir=log_dir, quiet=quiet,
                        monitor=certified.certified_monitor(data.x_val, data.y_val, spec.eps,
                                                            method=spec.select_method),
                        min_epochs=spec.warmup_epochs + spec.ramp_epochs)
    return {**robust_metrics(model, data, spec), "method": spec.method, "best_epoch": history.best_epoch,
            "certified_val_accuracy": history.best_score, "epochs_trained": len(history.epochs),
            "train_seconds": time.perf_counter() - start}


def retrained_student(student, data, spec, options, **fit_kwargs):
    """The re-trained robust student: a copy of the distilled `student` trained with the certified loss.

    The given student is left unchanged. Returns (robust student, metrics).
    """
    robust = keras.models.clone_model(student)
    robust.set_weights(student.get_weights())
    return robust, certified_fit(robust, data, spec, options, **fit_kwargs)


def straight_student(architecture, hparams, data, spec, options, **fit_kwargs):
    """The straight robust student: zoo `architecture` with `hparams`, trained from scratch (seed
    `options.seed`) with the certified loss. Returns (robust student, metrics)."""
    student = models.build(architecture, data.input_shape, data.num_classes, seed=options.seed, **hparams)
    return student, certified_fit(student, data, spec, options, **fit_kwargs)
