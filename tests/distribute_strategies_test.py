"""tf.distribute in the training loop: MirroredStrategy over 2 logical CPUs (gradient of the global-batch
mean, accuracy as on one device), MultiWorkerMirroredStrategy with two workers on loopback agreeing on
the weights. Each runs in subprocesses, as devices and collectives are fixed when TensorFlow starts."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from swtf import checkpoints, runs
from swtf.errors import SwtfError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

# Start of a subprocess script: 2 logical CPUs, MirroredStrategy over them, the digits data, and one uneven
# global batch of 5 training examples (3 + 2 per replica), `x, y` and distributed as `batch`.
TWO_CPU_MIRRORED_PREAMBLE = r'''
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from swtf import data, models, train
from swtf.distribute import strategies

d = data.load_dataset("digits", seed=0)
mirrored = strategies.make_strategy("mirrored")
x, y = d.x_train[:5], d.y_train[:5]
batch = next(iter(mirrored.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(5))))
'''

MIRRORED = TWO_CPU_MIRRORED_PREAMBLE + r'''
with mirrored.scope():
    model = models.build("snn", d.input_shape, 10, seed=0, width=16)

# Summed replica gradients against one device's.

def replica_gradients(loss_of):
    def step(b):
        with tf.GradientTape() as tape:
            loss = loss_of(b)
        return tape.gradient(loss, model.trainable_variables), tf.shape(b[0])[0]
    grads, sizes = mirrored.run(step, args=(batch,))
    summed = [mirrored.reduce("SUM", g, axis=None).numpy() for g in grads]
    return summed, [int(s) for s in mirrored.experimental_local_results(sizes)]

scaled, sizes = replica_gradients(lambda b: strategies.scaled_replica_loss(train.cross_entropy_loss, model, b, 0))
naive, _ = replica_gradients(lambda b: train.cross_entropy_loss(model, b, 0) / 2.0)
with tf.GradientTape() as tape:
    loss = train.cross_entropy_loss(model, (tf.constant(x), tf.constant(y)), 0)
single = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

def trained(strategy):
    with strategies.scope(strategy):
        m = models.build("snn", d.input_shape, 10, seed=0, width=16)
    opts = train.TrainOptions(epochs=4, batch_size=64, learning_rate=1e-2, seed=0)
    history = train.fit(m, (d.x_train, d.y_train), (d.x_val, d.y_val), options=opts, quiet=True, strategy=strategy)
    return train.accuracy(m, d.x_test, d.y_test), history["loss"][0]

accuracy_default, loss_default = trained(None)
accuracy_mirrored, loss_mirrored = trained(mirrored)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync, "sizes": sizes,
    "scaled_error": max(float(np.max(np.abs(a - b))) for a, b in zip(scaled, single)),
    "naive_error": max(float(np.max(np.abs(a - b))) for a, b in zip(naive, single)),
    "accuracy_default": accuracy_default, "accuracy_mirrored": accuracy_mirrored,
    "loss_default": loss_default, "loss_mirrored": loss_mirrored}))
'''


def last_json_line(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_over_two_cpus_trains_like_one_device():
    result = last_json_line(subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                                           cwd=REPO, env=ENV, timeout=600))
    assert result["replicas"] == 2 and sorted(result["sizes"]) == [2, 3]
    assert result["scaled_error"] < 1e-6  # the gradient of the global-batch mean
    assert result["naive_error"] > 1e-3  # averaging the replicas' means would not be
    assert result["loss_mirrored"] == pytest.approx(result["loss_default"], rel=1e-3)
    assert result["accuracy_default"] > 0.8
    assert abs(result["accuracy_mirrored"] - result["accuracy_default"]) <= 0.03


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_finish_and_agree_on_the_weights(tmp_path):
    run_dir = str(tmp_path / "run")
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = [sys.executable, "-m", "swtf.main", "--mode=train", "--model=snn", '--hparams={"width": 16}',
               "--epochs=2", "--learning_rate=0.01", "--quiet", "--strategy=multi_worker", f"--run_dir={run_dir}"]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(ENV, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                                      "task": {"type": "worker", "index": i}})))
                 for i in range(2)]
    try:
        outputs = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    chief, record = runs.load_trained(run_dir, "teacher")
    other = checkpoints.load_model(runs.model_path(os.path.join(run_dir, "workers", "worker-1"), "teacher"))
    assert record["metrics"]["strategy"] == {"name": "multi_worker", "replicas": 2}
    assert record["metrics"]["test_accuracy"] > 0.5  # it learned
    for a, b in zip(chief.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_multi_worker_without_tf_config_is_one_line(monkeypatch):
    from swtf.distribute import strategies

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(SwtfError, match="needs TF_CONFIG") as err:
        strategies.make_strategy("multi_worker")
    assert "\n" not in str(err.value)
