"""A keras-tuner `HyperModel` whose models are zoo students and whose training is distillation.

`build(hp)` samples a student from `space.sample_student`; `fit` trains it with `trainer.distill` (so with
`swtf.train.fit` and its early stopping), passing keras-tuner's callbacks to the loop, which calls them at
each epoch with the objective "val_accuracy" in the logs. A student over the parameter budget is not
trained: its trial scores validation accuracy 0, which the tuner ranks last and the Bayesian optimiser
learns to avoid (a failed trial would teach it nothing).
"""

import dataclasses

import keras
import keras_tuner

from swtf import models
from swtf.distill import trainer
from swtf.search import space

OBJECTIVE = "val_accuracy"


class DistillationHyperModel(keras_tuner.HyperModel):
    """Students of `families` for `data`, distilled from `targets` under `spec`.

    Args:
      data: the `swtf.data.Dataset` (validation split = the objective; the test split is never seen).
      targets: the teacher's `trainer.TeacherTargets`.
      spec: the `trainer.DistillSpec` (method, alpha, targets, augmentation).
      options: `swtf.train.TrainOptions`; Hyperband overrides its epochs per trial.
      families: student families to search over.
      temperatures: if more than one, the temperature is searched as well ("temperature" choice).
      max_params: parameter budget (None: no budget).
      teacher: the teacher model (online targets only).
      quiet: silences progress bars.
    """

    def __init__(self, data, targets, spec, options, families, temperatures=(), max_params=None, teacher=None,
                 quiet=True):
        super().__init__(name="distilled_student")
        self.data, self.targets, self.spec, self.options = data, targets, spec, options
        self.families = space.check_families(families)
        self.temperatures = tuple(temperatures)
        self.max_params, self.teacher, self.quiet = max_params, teacher, quiet

    def build(self, hp):
        architecture, hparams = space.sample_student(hp, self.families)
        if len(self.temperatures) > 1:
            hp.Choice("temperature", [float(t) for t in self.temperatures])
        return models.build(architecture, self.data.input_shape, self.data.num_classes, seed=self.options.seed,
                            **hparams)

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        """Distils `model`; returns the trial's metrics {"val_accuracy", "teacher_agreement", "params"}."""
        del args, kwargs  # the data are the hypermodel's own
        params = models.count_params(model)
        if self.max_params is not None and params > self.max_params:
            return self._over_budget(model, params, callbacks)
        spec = self.spec
        if "temperature" in hp.values:
            spec = dataclasses.replace(spec, temperature=hp.get("temperature"))
        options = self.options
        if epochs is not None:  # Hyperband: train `epochs - initial_epoch` more epochs from its checkpoint
            options = dataclasses.replace(options, epochs=max(1, epochs - initial_epoch))
        metrics = trainer.distill(model, self.data, self.targets, spec, options, teacher=self.teacher,
                                  name=f"search {model.architecture}", quiet=self.quiet, callbacks=callbacks)
        return {OBJECTIVE: metrics["val_accuracy"], "teacher_agreement": metrics["teacher_agreement"],
                "params": float(params)}

    def _over_budget(self, model, params, callbacks):
        """Scores 0 without training; the callbacks still see one epoch, so the trial has a checkpoint."""
        logs = {OBJECTIVE: 0.0}
        callback_list = keras.callbacks.CallbackList(callbacks or [], model=model)
        callback_list.on_train_begin()
        callback_list.on_epoch_begin(0)
        callback_list.on_epoch_end(0, logs)
        callback_list.on_train_end(logs)
        return {OBJECTIVE: 0.0, "teacher_agreement": 0.0, "params": float(params)}
