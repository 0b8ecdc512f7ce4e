"""Counterexample distances for the radius search: the nearest misclassified points a short PGD finds.

No sound method certifies a radius whose ball holds a misclassified point, so `certified_radius` refutes
bisection midpoints at or beyond such a point's distance without computing bounds. Those are the
largest radii, where almost every ReLU is unstable and a full-CROWN pass costs most. The radii found are
those of plain bisection; only the work changes.

PGD (`swtf.attack.pgd`, margin loss, one random start) runs on the network's own float32 TF ops at
radii max_radius / 2**k, from the largest down, on the points it refuted at the previous radius. A
candidate counts only if the network's exact float64 evaluation (`network.forward`) misclassifies it
(or ties); its distance to the clean point, computed in float64, is the point's counterexample distance.
"""

import functools
import weakref

import numpy as np
import tensorflow as tf

from swtf.certify.linear_ops import network_function
from swtf.certify.network import forward

STEPS = 20

_TARGETS = weakref.WeakKeyDictionary()  # Network -> its float32 logits callable (compiled attacks hang on it)
_DESCENTS = weakref.WeakKeyDictionary()  # Network -> its compiled violation descent


class _NetworkLogits:
    """The network's float32 TF forward, in the form `swtf.attack` takes a model."""

    def __init__(self, network):
        self.input_shape_ = network.input_shape
        self._apply = network_function(network, tf.float32)

    def __call__(self, x, training=False):
        return self._apply(tf.cast(x, tf.float32))


def counterexample_radii(network, x, y, *, norm, clip, max_radius, min_radius, seed=0):
    """(N,) float64 distances from each point of `x` to a confirmed counterexample, inf where PGD found
    none at any radius max_radius / 2**k >= `min_radius` (`nearest_counterexamples`' distances)."""
    return nearest_counterexamples(network, x, y, norm=norm, clip=clip, max_radius=max_radius,
                                   min_radius=min_radius, seed=seed)[0]


def nearest_counterexamples(network, x, y, *, norm, clip, max_radius, min_radius, seed=0):
    """(distances (N,), points (N, *input shape)): for each point of `x` the nearest confirmed counterexample
    PGD found at the radii max_radius / 2**k >= `min_radius` and its float64 distance; inf and NaN where
    it found none.

    `clip`: the input box of the L-inf set, or None (L2 balls are not intersected with a box; the
    attack then stays in the box spanned by `x`, whose points are in the ball all the same).
    """
    from swtf import attack  # the attack package depends on Keras models, not the other way round

    if network not in _TARGETS:
        _TARGETS[network] = _NetworkLogits(network)
    target = _TARGETS[network]
    x32 = x.astype(np.float32)
    box = clip if clip is not None else (float(x32.min()), float(x32.max()))
    found = np.full(len(x), np.inf)
    points = np.full(x.shape, np.nan)
    active = np.arange(len(x))
    radius = float(max_radius)
    while len(active) and radius >= min_radius:
        x_adv = attack.pgd(target, x32[active], y[active], radius, norm=norm, steps=STEPS, loss="margin",
                           clip=box, seed=seed).astype(np.float64)
        logits = forward(network, x_adv)
        label_logit = logits[np.arange(len(active)), y[active]]
        np.put_along_axis(logits, y[active][:, None], -np.inf, axis=1)
        refuted = (logits.max(axis=1) >= label_logit) & np.all((x_adv >= box[0]) & (x_adv <= box[1]),
                                                              axis=tuple(range(1, x.ndim)))
        distance = attack.lp_balls.distances(x_adv - x[active], norm)
        nearer = refuted & (distance < found[active])
        found[active[nearer]] = distance[nearer]
        points[active[nearer]] = x_adv[nearer]
        active = active[refuted]
        radius /= 2
    return found, points


def violation_descent(network, starts, lower, upper, rows, offsets, steps):
    """PGD towards points meeting linear output constraints: for each start b, minimises the largest violation
    max_s (<rows[b, s], f(x)> - offsets[b, s]) over the box [lower[b], upper[b]] by signed-gradient steps
    projected onto the box, with a step that decays linearly from a quarter of the box width. (`swtf.attack.pgd`
    attacks a label inside an eps-ball; here the target is a set of linear output constraints over any box.)

    The network runs in float32 TF. Args: (B, *input shape) starts and box bounds, (B, S, *output shape) rows,
    (B, S) offsets (padding rows: a huge offset). Returns the best iterate per start, (B, *input shape)
    float64, and its float32 objective (B,): candidates only, which the caller re-checks.
    """
    if network not in _DESCENTS:
        # BaB's attack runs every round on a different number of starts: relaxed shapes, not one graph each.
        _DESCENTS[network] = tf.function(functools.partial(_descend, network_function(network, tf.float32)),
                                         reduce_retracing=True)
    as32 = functools.partial(tf.constant, dtype=tf.float32)
    rows = np.reshape(rows, rows.shape[:2] + (-1,))
    x, value = _DESCENTS[network](as32(starts), as32(lower), as32(upper), as32(rows), as32(offsets), tf.constant(steps))
    return x.numpy().astype(np.float64), value.numpy()


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
