"""Falsification by projected gradient descent on the network: candidate counterexamples of disjuncts.

For disjunct rows `matrix @ y <= offset`, PGD minimises the largest violation
max_i (matrix_i @ f(x) - offset_i) over the disjunct's box by signed-gradient steps projected onto the
box, from the box centre and uniform random starts, with a step that decays linearly from a quarter
of the box width. (`swtf.attack.pgd` attacks a label inside an eps-ball; here the target is a set of
linear output constraints over an arbitrary box, so the loop is written for that.) The network runs
in float32 TF; candidates are only candidates: the caller re-checks them on onnxruntime.
"""

import functools
import weakref

import numpy as np
import tensorflow as tf

from swtf.certify.linear_ops import network_function

STEPS = 100
RESTARTS = 16
_PAD = 1e30  # offset of padding rows: they never hold the maximum

_FUNCTIONS = weakref.WeakKeyDictionary()  # Network -> compiled descent


def _descent(network):
    if network not in _FUNCTIONS:
        _FUNCTIONS[network] = tf.function(functools.partial(_descend, network_function(network, tf.float32)))
    return _FUNCTIONS[network]


def _descend(apply, x, lower, upper, rows, offsets, steps):
    """The lowest-objective iterate per start and its objective (all tensors float32)."""
    batch = tf.shape(x)[0]

    def objective(points):
        outputs = tf.reshape(apply(points), [batch, -1])
        return tf.reduce_max(tf.einsum("bso,bo->bs", rows, outputs) - offsets, axis=1)

    best_x, best = x, objective(x)
    width = upper - lower
    for t in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = objective(x)
        better = value < best
        pick = tf.reshape(better, [-1] + [1] * (len(x.shape) - 1))
        best_x, best = tf.where(pick, x, best_x), tf.where(better, value, best)
        fraction = 1.0 - tf.cast(t, tf.float32) / tf.cast(steps, tf.float32)
        step = width * (0.25 * fraction + 0.002)
        x = tf.clip_by_value(x - step * tf.sign(tape.gradient(value, x)), lower, upper)
    value = objective(x)
    better = value < best
    pick = tf.reshape(better, [-1] + [1] * (len(x.shape) - 1))
    return tf.where(pick, x, best_x), tf.where(better, value, best)


def candidates(net, disjuncts, *, steps=STEPS, restarts=RESTARTS, seed=0):
    """PGD points of the disjuncts, (M, input_size) in ONNX order with their disjunct indices, most
    violating first; only points whose float32 objective is <= 0 are returned."""
    rng = np.random.default_rng(seed)
    shape = net.network.input_shape
    num_rows = max(len(d.offset) for d in disjuncts)
    lowers, uppers, rows, offsets, owners = [], [], [], [], []
    for index, d in enumerate(disjuncts):
        matrix = np.zeros((num_rows, net.output_size))
        matrix[:len(d.offset)] = d.matrix
        offset = np.full(num_rows, _PAD)
        offset[:len(d.offset)] = d.offset
        lowers.append(np.repeat(d.lower[None], restarts, 0))
        uppers.append(np.repeat(d.upper[None], restarts, 0))
        rows.append(np.repeat(net.output_rows(matrix).reshape(1, num_rows, -1), restarts, 0))
        offsets.append(np.repeat(offset[None], restarts, 0))
        owners += [index] * restarts
    lower, upper = np.concatenate(lowers), np.concatenate(uppers)
    start = lower + (upper - lower) * rng.random(lower.shape)
    start[::restarts] = (lower[::restarts] + upper[::restarts]) / 2
    as_input = functools.partial(_network_tensor, net, shape)
    x, value = _descent(net.network)(as_input(start), as_input(lower), as_input(upper),
                                     tf.constant(np.concatenate(rows), tf.float32),
                                     tf.constant(np.concatenate(offsets), tf.float32), tf.constant(steps))
    value = value.numpy()
    order = [i for i in np.argsort(value) if value[i] <= 0]
    points = net.from_network(x.numpy().astype(np.float64))
    return points[order], np.asarray(owners)[order]


def _network_tensor(net, shape, x):
    return tf.constant(net.to_network(x).reshape((-1,) + shape), tf.float32)
