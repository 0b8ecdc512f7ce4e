"""Pruning schedules: how many filters go, and when, with fine-tuning between the removals.

A schedule is any tensorflow-model-optimization pruning schedule, `schedule(step) -> (should_prune,
sparsity)` (`tfmot.sparsity.keras.PolynomialDecay`, `ConstantSparsity`), read here with one step per
prune-and-fine-tune round instead of per optimizer step. At each round whose `should_prune` is true the
policy removes filters until `sparsity` of the *original* filters are gone; the smaller model is then
fine-tuned with `swtf.train.fit` (early-stopped on validation accuracy) on the labels or on a teacher's
logits. Filters once removed stay removed, so a constant schedule prunes at its first round only and
one-shot pruning is `ConstantSparsity(fraction, begin_step=0, frequency=1)` run for one round.
"""

import dataclasses

import numpy as np
import tensorflow_model_optimization as tfmot

from swtf import progress, train
from swtf.distill import losses
from swtf.errors import SwtfError
from swtf.models import count_params
from swtf.prune.cost import count_flops
from swtf.prune.scores import filter_counts
from swtf.prune.surgery import remove_filters

DISTILL_LOSSES = ("hinton", "logits")


@dataclasses.dataclass(frozen=True)
class PruneStep:
    """One point of a pruning run: the model after a round's removal and fine-tuning, and its scores.

    `step` 0 is the unpruned model; `sparsity` is the schedule's target share of the original filters.
    """

    step: int
    sparsity: float
    model: object
    filters: dict
    params: int
    flops: int
    val_accuracy: float
    test_accuracy: float
    finetune_epochs: int

    def as_row(self):
        """The step as a JSON/CSV-ready dict (the model left out; filters as `layer:count` pairs)."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        row["filters"] = " ".join(f"{name}:{count}" for name, count in self.filters.items())
        return row


def polynomial(final_sparsity, steps, power=3):
    """tfmot's cubic ramp from 0 to `final_sparsity`, reaching it at round `steps` (rounds 1..steps prune)."""
    return tfmot.sparsity.keras.PolynomialDecay(0.0, final_sparsity, begin_step=0, end_step=steps, power=power,
                                                frequency=1)


def constant(sparsity):
    """tfmot's constant target: every round asks for `sparsity`; only the first has anything to remove."""
    return tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)


def distillation_loss(kind="hinton", temperature=4.0, alpha=0.9):
    """A `train.fit` loss on batches `(x, y, teacher_logits)`: `losses.hinton_kd` or `losses.matching_logits`."""
    if kind not in DISTILL_LOSSES:
        raise SwtfError(f"unknown distillation loss {kind!r}; choose one of {', '.join(DISTILL_LOSSES)}")

    def loss_fn(model, batch, step):
        del step
        x, y, teacher_logits = batch
        student_logits = model(x, training=True)
        if kind == "logits":
            return losses.matching_logits(teacher_logits, student_logits)
        return losses.hinton_kd(teacher_logits, student_logits, y, temperature, alpha)

    return loss_fn


def _evaluate(step, sparsity, model, data, epochs):
    return PruneStep(step=step, sparsity=float(sparsity), model=model, filters=filter_counts(model),
                     params=count_params(model), flops=count_flops(model),
                     val_accuracy=train.accuracy(model, data.x_val, data.y_val),
                     test_accuracy=train.accuracy(model, data.x_test, data.y_test), finetune_epochs=epochs)


def prune_iteratively(model, data, schedule, policy, *, steps, train_options=None, teacher_logits=None,
                      loss_fn=None, quiet=True, name="prune"):
    """Prunes `model` round by round as `schedule` asks, fine-tuning after each removal.

    Args:
      model: the trained model to prune (left unchanged; every step holds a new model).
      data: a `swtf.data.Dataset`; validation accuracy early-stops fine-tuning, test accuracy is reported.
      schedule: `schedule(step) -> (should_prune, sparsity)`, e.g. `polynomial(...)` or `constant(...)`.
      policy: `policy(model, sparsity, reference) -> {layer: indices}`, e.g. `policies.layer_fraction` or
        `policies.global_fraction`; `reference` is the unpruned model's filter counts.
      steps: number of rounds; the schedule is read at rounds 1..steps.
      train_options: `swtf.train.TrainOptions` for fine-tuning; None prunes without fine-tuning.
      teacher_logits: the teacher's logits on `data.x_train`, batched with it as the third array.
      loss_fn: `train.fit` loss; defaults to `distillation_loss()` with teacher logits, labels without.
      quiet: silences the progress of the rounds and of their fine-tuning.
      name: label of the fine-tuning runs.

    Returns:
      A list of `PruneStep`: the unpruned model (step 0), then every round that removed filters.
    """
    if steps < 1:
        raise SwtfError(f"pruning needs at least one step, got {steps}")
    reference = filter_counts(model)
    training_set = (data.x_train, data.y_train)
    if teacher_logits is not None:
        teacher_logits = np.asarray(teacher_logits, np.float32)
        if teacher_logits.shape[0] != len(data.x_train):
            raise SwtfError(f"teacher logits cover {teacher_logits.shape[0]} examples, the training set "
                            f"{len(data.x_train)}; compute them on data.x_train")
        training_set += (teacher_logits,)
        loss_fn = loss_fn or distillation_loss()
    history = [_evaluate(0, 0.0, model, data, 0)]
    current = model
    with progress.Progress(name, steps, unit="step", quiet=quiet) as bar:
        for step in range(1, steps + 1):
            should_prune, sparsity = schedule(step)
            removals = policy(current, float(sparsity), reference) if bool(should_prune) else None
            if not removals:
                bar.step(f"step {step}", "nothing to remove")
                continue
            current = remove_filters(current, removals)
            epochs = 0
            if train_options is not None:
                fitted = train.fit(current, training_set, (data.x_val, data.y_val), options=train_options,
                                   loss_fn=loss_fn, name=f"{name} step {step}", quiet=quiet)
                epochs = len(fitted.epochs)
            history.append(_evaluate(step, sparsity, current, data, epochs))
            bar.step(f"step {step}", f"{history[-1].params:,} parameters, val_accuracy "
                                     f"{history[-1].val_accuracy:.4f}")
    return history
