"""The one training loop of swtf: a `tf.GradientTape` step under `tf.function`, driven epoch by epoch.

Every training stage (standard, distillation, pruning fine-tuning, adversarial and certified training) is
this loop with a different `loss_fn(model, batch, step)`. Early stopping monitors validation accuracy on
true labels and restores the best weights, so a stage never returns a model worse on validation than one
it already saw.
"""

import dataclasses
import weakref

import keras
import numpy as np
import tensorflow as tf

from swtf import progress
from swtf.errors import SwtfError

LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How to train: optimiser (Adam), batches, epochs, learning-rate schedule and early stopping."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5
    lr_schedule: str = "cosine"
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise SwtfError(f"epochs, batch_size and patience must be >= 1, got {self.epochs}, {self.batch_size}, "
                            f"{self.patience}")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise SwtfError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SwtfError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")


@dataclasses.dataclass
class History:
    """Per-epoch metrics of one `fit` call and the epoch whose weights were kept.

    `best_val_accuracy` is the clean validation accuracy of the kept epoch.
    """

    epochs: list = dataclasses.field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0
    best_score: float = -np.inf  # the monitored score of the kept epoch (val_accuracy unless a monitor is set)

    def __getitem__(self, key):
        return [row[key] for row in self.epochs]

    def as_dict(self):
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_val_accuracy,
                "best_score": self.best_score}


def cross_entropy_loss(model, batch, step):
    """Mean sparse softmax cross-entropy of the model's logits on the batch's labels."""
    del step
    x, y = batch[0], batch[1]
    logits = model(x, training=True)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=logits))


def _learning_rate(options, steps_per_epoch):
    if options.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(options.learning_rate, options.epochs * steps_per_epoch)
    return options.learning_rate


def predict_logits(model, x, batch_size=256):
    """The model's logits on `x` in inference mode, computed in batches."""
    x = np.asarray(x, dtype=np.float32)
    expected = tuple(getattr(model, "input_shape_", x.shape[1:]))
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise SwtfError(f"expected input shape (None, {', '.join(map(str, expected))}), received {x.shape}")
    forward = _inference_function(model)
    outputs = [forward(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.num_classes), np.float32)


_INFERENCE_FUNCTIONS = weakref.WeakKeyDictionary()


def _inference_function(model):
    """One compiled inference function per model, kept only as long as the model lives."""
    if model not in _INFERENCE_FUNCTIONS:
        _INFERENCE_FUNCTIONS[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return _INFERENCE_FUNCTIONS[model]


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of the model on `(x, y)`."""
    if len(y) == 0:
        return float("nan")
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) == np.asarray(y)))


def _batches(arrays, batch_size, seed):
    dataset = tf.data.Dataset.from_tensor_slices(tuple(arrays))
    dataset = dataset.shuffle(len(arrays[0]), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _single_device_training(model, loss_fn, learning_rate, dataset):
    """(optimizer, dataset, train_step) of the one-device loop."""
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = loss_fn(model, batch, optimizer.iterations)
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return optimizer, dataset, train_step


def fit(model, train, val, *, options, loss_fn=None, name="train", log_dir=None, quiet=False, callbacks=None,
        monitor=None, min_epochs=0, strategy=None):
    """Trains `model` in place with Adam and early stopping; returns its `History`.

    Args:
      model: a Keras model producing logits.
      train: tuple of arrays `(x, y, *extras)`, shuffled and batched together.
      val: `(x_val, y_val)`; validation accuracy on true labels drives early stopping.
      options: `TrainOptions`.
      loss_fn: `loss_fn(model, batch, step) -> scalar`; `batch` is the tuple of tensors `(x, y, *extras)` and
        `step` the optimizer's step counter. Defaults to cross-entropy on the labels.
      name: label of the per-epoch progress (`swtf.progress`: a bar on a terminal, one line per epoch otherwise).
      log_dir: if given, TensorBoard scalars (loss, val_accuracy, learning_rate) are written there.
      quiet: silences the per-epoch progress.
      callbacks: Keras callbacks; the loop calls their train/epoch hooks (keras-tuner needs this).
      monitor: optional `(name, score_fn)`; `score_fn(model) -> float` replaces clean validation accuracy as the
        score that selects the kept weights and drives early stopping (e.g. certified or PGD accuracy on the
        validation split for robust training). It is logged under `name` beside val_accuracy. Ties go to the
        later epoch (robust scores are often flat, e.g. 0, early in an eps ramp).
      min_epochs: early stopping waits at least this many epochs (e.g. until an eps ramp has finished).
      strategy: a `tf.distribute` strategy (`swtf.distribute.strategies.make_strategy`) whose scope `model` was
        built in: each step runs under `strategy.run` on a distributed dataset of global batches of
        `options.batch_size`. None: one device.
    """
    loss_fn = loss_fn or cross_entropy_loss
    train = tuple(np.asarray(a) for a in train)
    if len({len(a) for a in train}) != 1 or len(train[0]) == 0:
        raise SwtfError(f"{name}: training arrays must be non-empty and of equal length, got "
                        f"{[len(a) for a in train]}")
    keras.utils.set_random_seed(options.seed)
    steps_per_epoch = int(np.ceil(len(train[0]) / options.batch_size))
    learning_rate = _learning_rate(options, steps_per_epoch)
    batches = _batches(train, options.batch_size, options.seed)
    if strategy is not None:
        from swtf.distribute.strategies import distributed_training

        optimizer, dataset, train_step = distributed_training(strategy, model, loss_fn, learning_rate, batches)
    else:
        optimizer, dataset, train_step = _single_device_training(model, loss_fn, learning_rate, batches)

    callbacks = keras.callbacks.CallbackList(callbacks or [], model=model)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    history = History()
    best_weights = None
    model.stop_training = False
    callbacks.on_train_begin()
    # A bar per epoch on a terminal; in a log one line per trained model (a study trains dozens).
    with progress.Progress(name, options.epochs, unit="epoch", quiet=quiet, lines=False) as bar:
        for epoch in range(options.epochs):
            callbacks.on_epoch_begin(epoch)
            losses = []
            for batch in dataset:
                loss = float(train_step(batch))
                if not np.isfinite(loss):
                    raise SwtfError(f"{name}: the loss became {loss} at epoch {epoch + 1}; lower --learning_rate")
                losses.append(loss)
            val_accuracy = accuracy(model, *val)
            logs = {"loss": float(np.mean(losses)), "val_accuracy": val_accuracy,
                    "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate))}
            score = val_accuracy
            if monitor is not None:
                score = logs[monitor[0]] = float(monitor[1](model))
            history.epochs.append({"epoch": epoch + 1, **logs})
            if writer is not None:
                with writer.as_default(step=epoch + 1):
                    for key, value in logs.items():
                        tf.summary.scalar(key, value)
            if score > history.best_score or (monitor is not None and score == history.best_score):
                history.best_epoch, history.best_score, history.best_val_accuracy = epoch + 1, score, val_accuracy
                best_weights = [np.array(w) for w in model.get_weights()]
            callbacks.on_epoch_end(epoch, logs)
            bar.step(f"epoch {epoch + 1}", ", ".join(f"{key} {value:.4g}" for key, value in logs.items()
                                                     if key != "learning_rate"))
            if (epoch + 1 >= min_epochs and epoch + 1 - history.best_epoch >= options.patience) or model.stop_training:
                break
        bar.summary(f"{len(history.epochs)} epochs, best {monitor[0] if monitor else 'val_accuracy'} "
                    f"{history.best_score:.4f} at epoch {history.best_epoch}")
    model.set_weights(best_weights)
    callbacks.on_train_end({"val_accuracy": history.best_val_accuracy})
    if writer is not None:
        writer.flush()
    return history
