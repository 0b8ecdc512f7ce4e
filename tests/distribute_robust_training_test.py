"""Robust training under tf.distribute (MirroredStrategy over 2 logical CPUs, in a subprocess since
devices are fixed when TensorFlow starts): the certified losses (IBP, CROWN-IBP on the engine's live
bounds over mirrored variables) give the single-device gradient of the global batch, and certified
training through `fit` follows the single-device losses and certified accuracies; PGD training draws
different random starts per replica, keeps its examples in the ball and box, and trains a model as
robust, under a PGD attack, as single-device PGD training does."""

import subprocess
import sys

import pytest

from distribute_strategies_test import ENV, REPO, TWO_CPU_MIRRORED_PREAMBLE, last_json_line

ROBUST_MIRRORED = TWO_CPU_MIRRORED_PREAMBLE + r'''
from swtf import attack
from swtf.train import certified
from swtf.train.adversarial import PGDTraining, pgd_examples

with mirrored.scope():
    model = models.build("shallow_cnn", d.input_shape, 10, seed=0, filters=[4], dense=[16])


def constant(value):
    return lambda step: tf.constant(value, tf.float32)


losses = {"ibp": certified.certified_loss("ibp", constant(0.1), constant(0.5)),
          "crown-ibp": certified.certified_loss("crown-ibp", constant(0.1), constant(0.5), constant(1.0))}
gradient_errors, scales = {}, {}
for name, loss_fn in losses.items():
    def replica_gradients(b):
        with tf.GradientTape() as tape:
            loss = strategies.scaled_replica_loss(loss_fn, model, b, 0)
        return tape.gradient(loss, model.trainable_variables)

    summed = [mirrored.reduce("SUM", g, axis=None).numpy() for g in mirrored.run(replica_gradients, args=(batch,))]
    with tf.GradientTape() as tape:
        loss = loss_fn(model, (tf.constant(x), tf.constant(y)), 0)
    single = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    gradient_errors[name] = max(float(np.max(np.abs(a - b))) for a, b in zip(summed, single))
    scales[name] = max(float(np.max(np.abs(b))) for b in single)

pgd = PGDTraining(eps=0.1, steps=5)
replica_seeds = [s.numpy().tolist() for s in mirrored.experimental_local_results(mirrored.run(lambda: pgd.start_seed(3)))]


def replica_examples(b):
    x_adv = pgd_examples(model, b[0], b[1], 0.1, steps=5, step_size=0.05, seed=pgd.start_seed(0))
    return tf.reduce_max(tf.abs(x_adv - b[0])), tf.reduce_min(x_adv), tf.reduce_max(x_adv)


in_ball = [[float(v) for v in mirrored.experimental_local_results(t)]
           for t in mirrored.run(replica_examples, args=(batch,))]


def pgd_trained(strategy, loss_fn):
    with strategies.scope(strategy):
        m = models.build("snn", d.input_shape, 10, seed=0, width=64)
    opts = train.TrainOptions(epochs=8, batch_size=64, learning_rate=1e-2, seed=0)
    train.fit(m, (d.x_train, d.y_train), (d.x_val, d.y_val), options=opts, quiet=True, strategy=strategy,
              loss_fn=loss_fn)
    return (train.accuracy(m, d.x_test, d.y_test),
            attack.robust_accuracy(m, d.x_test, d.y_test, 0.1, steps=20, restarts=2))


def certified_trained(strategy):
    with strategies.scope(strategy):
        m = models.build("shallow_cnn", d.input_shape, 10, seed=0, filters=[8], dense=[32])
    schedules = certified.ramp_schedules(0.05, 0.5, warmup_steps=26, ramp_steps=52)
    opts = train.TrainOptions(epochs=3, batch_size=64, learning_rate=3e-3, seed=0)
    history = train.fit(m, (d.x_train, d.y_train), (d.x_val, d.y_val), options=opts, quiet=True,
                        strategy=strategy, loss_fn=certified.certified_loss("ibp", schedules.eps, schedules.kappa),
                        monitor=certified.certified_monitor(d.x_val, d.y_val, 0.05, "crown"))
    return history["loss"], [e["val_certified_accuracy"] for e in history.epochs]


print(json.dumps({
    "certified_default": certified_trained(None), "certified_mirrored": certified_trained(mirrored),
    "gradient_errors": gradient_errors, "scales": scales, "replica_seeds": replica_seeds,
    "single_seed": pgd.start_seed(3).numpy().tolist(), "in_ball": in_ball,
    "standard": pgd_trained(None, None), "pgd_default": pgd_trained(None, pgd),
    "pgd_mirrored": pgd_trained(mirrored, pgd)}))
'''


def test_robust_training_under_mirrored_strategy():
    result = last_json_line(subprocess.run([sys.executable, "-c", ROBUST_MIRRORED], capture_output=True,
                                           text=True, cwd=REPO, env=ENV, timeout=900))
    for name, error in result["gradient_errors"].items():
        assert result["scales"][name] > 1e-3, name
        assert error < 1e-5 * result["scales"][name], (name, error)
    seeds = result["replica_seeds"]
    assert len(seeds) == 2 and seeds[0] != seeds[1] and result["single_seed"] == [0, 3]
    (largest_step, lowest, highest) = result["in_ball"]
    assert max(largest_step) <= 0.1 + 1e-6 and min(lowest) >= 0.0 and max(highest) <= 1.0
    (_, robust_default), (clean_mirrored, robust_mirrored) = result["pgd_default"], result["pgd_mirrored"]
    robust_standard = result["standard"][1]
    (loss_default, certified_default), (loss_mirrored, certified_mirrored) = (result["certified_default"],
                                                                            result["certified_mirrored"])
    assert loss_mirrored == pytest.approx(loss_default, rel=1e-3)
    assert max(certified_default) > 0.2 and max(certified_mirrored) > 0.2
    assert abs(certified_mirrored[-1] - certified_default[-1]) <= 0.03
    assert robust_default > robust_standard + 0.15
    assert robust_mirrored > robust_standard + 0.15
    assert abs(robust_mirrored - robust_default) <= 0.06
    assert clean_mirrored > 0.8
