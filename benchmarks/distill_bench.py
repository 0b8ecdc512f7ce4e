"""Distillation training throughput: `swtf.train.fit` with our distillation loss against Keras `model.fit`.

Both train the same student (same initial weights) on the same data, cached teacher logits, batch size and
optimiser (Adam, constant learning rate), with a validation pass per epoch. The Keras side is a compiled
distillation equivalent: a `keras.Model` whose `train_step` applies the same `soft_target_cross_entropy`
to the same targets. Throughput is training examples per second over the epochs after the first (which
includes tracing), timed from `on_epoch_begin` to `on_epoch_end`. The two loops alternate `--repeats`
times; each pair gives a ratio (so that load from other processes, which drifts over minutes, hits both
sides of a pair alike) and the median pair ratio is the result. Goal: ratio swtf / Keras >= 0.9.

    python benchmarks/distill_bench.py --examples 8000 --epochs 3 --batch 128 --repeats 5
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from swtf import models, train
from swtf.distill import losses, trainer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=8000, help="training examples (synthetic 28x28x1)")
    parser.add_argument("--val", type=int, default=1000, help="validation examples")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is not timed)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--student", default="scnn2", help="zoo student")
    parser.add_argument("--hparams", default="filters=16-32", help="student hyper-parameters, key=a-b,...")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5, help="alternating pairs of runs (median ratio)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def parse_hparams(text):
    hparams = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        parts = [int(v) for v in value.split("-")]
        hparams[key] = tuple(parts) if len(parts) > 1 else parts[0]
    return hparams


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, from on_epoch_begin to on_epoch_end (validation included)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class KerasDistiller(keras.Model):
    """Keras' own loop for the same objective: `train_step` minimises the soft-target cross-entropy."""

    def __init__(self, student, temperature):
        super().__init__()
        self.student, self.temperature = student, temperature

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, (y, teacher_logits) = data
        with tf.GradientTape() as tape:
            loss = losses.soft_target_cross_entropy(teacher_logits, self(x, training=True), self.temperature)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        del y
        return {"loss": loss}

    def test_step(self, data):
        x, y = data
        correct = tf.equal(tf.argmax(self(x, training=False), axis=1), tf.cast(y, tf.int64))
        return {"accuracy": tf.reduce_mean(tf.cast(correct, tf.float32))}


def examples_per_second(timer, n):
    steady = timer.seconds[1:]  # the first epoch traces the step functions
    return n * len(steady) / sum(steady)


def run_swtf(args, data, build):
    student = build()
    spec = trainer.DistillSpec("soft_targets", temperature=args.temperature)
    options = train.TrainOptions(epochs=args.epochs, batch_size=args.batch, patience=args.epochs + 1,
                                 lr_schedule="constant", seed=args.seed)
    timer = EpochTimer()
    train.fit(student, data["train"], data["val"], loss_fn=trainer.distillation_loss_fn(spec), options=options,
              quiet=True, callbacks=[timer])
    return examples_per_second(timer, len(data["train"][0]))


def run_keras(args, data, build):
    model = KerasDistiller(build(), args.temperature)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y, teacher_logits = data["train"]
    timer = EpochTimer()
    model.fit(x, (y, teacher_logits), batch_size=args.batch, epochs=args.epochs, validation_data=data["val"],
              shuffle=True, verbose=0, callbacks=[timer])
    return examples_per_second(timer, len(x))


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    shape, classes = (28, 28, 1), 10
    x = rng.random((args.examples + args.val,) + shape, dtype=np.float32)
    y = rng.integers(0, classes, len(x))
    teacher_logits = rng.normal(0, 3, (args.examples, classes)).astype(np.float32)
    data = {"train": (x[:args.examples], y[:args.examples], teacher_logits),
            "val": (x[args.examples:], y[args.examples:])}
    hparams = parse_hparams(args.hparams)

    def build():
        return models.build(args.student, shape, classes, seed=args.seed, **hparams)

    print(f"{args.student} {hparams} ({models.count_params(build()):,} parameters), {args.examples} examples "
          f"28x28x1, batch {args.batch}, {args.epochs - 1} timed epochs, soft targets T={args.temperature:g}, "
          f"tf {tf.__version__}, keras {keras.__version__}, {tf.config.threading.get_intra_op_parallelism_threads()}"
          f" intra-op threads (0 = all cores)")
    results = {"swtf.train.fit": [], "keras model.fit": []}
    for i in range(args.repeats):  # alternate which loop goes first, so neither always runs warmer
        order = [("swtf.train.fit", run_swtf), ("keras model.fit", run_keras)][::1 if i % 2 == 0 else -1]
        for name, run in order:
            results[name].append(run(args, data, build))
    for name, values in results.items():
        print(f"{name:<16} {statistics.median(values):>8,.0f} examples/s (runs: {', '.join(f'{v:,.0f}' for v in values)})")
    ratios = [a / b for a, b in zip(results["swtf.train.fit"], results["keras model.fit"])]
    print(f"ratio swtf / keras: median {statistics.median(ratios):.2f}x over {len(ratios)} pairs "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); goal >= 0.9x")


if __name__ == "__main__":
    main()
