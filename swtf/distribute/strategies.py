"""tf.distribute strategies for `swtf.train.fit`: one step under `strategy.run`, losses scaled to the global batch.

Each replica computes the batch loss `loss_fn` returns (a mean over its share of the global batch) and
weighs it by its share: loss_r * n_r / N, with N = sum of n_r over replicas (all-reduced, so an uneven last
batch is weighed right). The optimizer sums the replicas' gradients, which is then the gradient of the mean
over the whole global batch, as on one device. Regularisation losses are divided by the replica count.
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

from swtf.errors import SwtfError


def make_strategy(name):
    """None for "default" (fit's single-device path), else the named strategy.

    mirrored: every local GPU, or every logical CPU device where there is no GPU. multi_worker: the workers
    of the TF_CONFIG cluster; create it before anything else runs TensorFlow ops.
    """
    if name == "default":
        return None
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise SwtfError('--strategy=multi_worker needs TF_CONFIG in every worker, e.g. {"cluster": {"worker": '
                            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise SwtfError(f"unknown strategy {name!r}; choose default, mirrored or multi_worker")


def scope(strategy):
    """The strategy's scope (create the model in it), or no scope for the default path."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def is_chief(strategy):
    """Whether this process writes the artifacts: always, except on multi-worker workers other than the chief
    (the "chief" task, or worker 0 where TF_CONFIG names no chief)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    spec = json.loads(os.environ["TF_CONFIG"])
    task = spec.get("task", {})
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in spec.get("cluster", {})


def artifacts_dir(strategy, run_dir):
    """Where this process saves what it trained: the run directory on the chief, `<run_dir>/workers/<task>`
    on the other workers (their weights equal the chief's; keeping them lets that be checked)."""
    if is_chief(strategy):
        return run_dir
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    return os.path.join(run_dir, "workers", f"{task['type']}-{task['index']}")


def scaled_replica_loss(loss_fn, model, batch, step):
    """In a replica context: this replica's loss weighed by its share of the global batch (see module doc)."""
    context = tf.distribute.get_replica_context()
    local = tf.cast(tf.shape(batch[0])[0], tf.float32)
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local)

    def weighed():
        loss = loss_fn(model, batch, step) * (local / total)
        if model.losses:
            loss += tf.add_n(model.losses) / context.num_replicas_in_sync
        return loss

    return tf.cond(local > 0, weighed, lambda: tf.constant(0.0))


def distributed_training(strategy, model, loss_fn, learning_rate, dataset):
    """(optimizer, distributed dataset, train_step) for `fit`: train_step(batch) -> global mean loss."""
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)

    def replica_step(batch):
        with tf.GradientTape() as tape:
            loss = scaled_replica_loss(loss_fn, model, batch, optimizer.iterations)
        grads = tape.gradient(loss, model.trainable_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(batch,)), axis=None)

    return optimizer, strategy.experimental_distribute_dataset(dataset), train_step
