"""Certified training: IBP (Gowal et al., 2018) and CROWN-IBP (Zhang et al., 2020) losses for `fit`.

The loss of a batch is

    kappa * CE(f(x), y) + (1 - kappa) * CE(-m(x, y), y),

where m_j is a lower bound of the margin f_y - f_j over the L-inf ball of radius eps around x (within
the input domain `clip`), so -m are the worst-case logits (-m_y = 0). The bounds are the certification
engine's own IBP and CROWN-IBP, computed in float32 from the model's live Keras variables so that their
gradients reach the weights (`live_margin_bounds`). For CROWN-IBP the bound is mixed with IBP as
beta * CROWN-IBP + (1 - beta) * IBP.

eps, kappa and beta follow schedules of the optimizer step: a warm-up at (eps, kappa, beta) = (0, 1, 1),
then a linear ramp to (train eps, kappa_final, 0) (`ramp_schedules`). Train with eps slightly above the
evaluation eps (Gowal et al. use 1.1x). Clean accuracy falls as eps grows, so select weights by
certified validation accuracy (`certified_monitor`), not by the loop's clean accuracy.
"""

import collections
import weakref

import numpy as np
import tensorflow as tf

from swtf.certify import api, spec as specs
from swtf.certify.keras_frontend import from_keras
from swtf.certify.perturbation import input_set
from swtf.certify.verifier import Verifier
from swtf.errors import SwtfError

METHODS = ("ibp", "crown-ibp")


class LinearRamp:
    """`start` for the first `warmup_steps` steps, then linear to `end` over `ramp_steps`, then `end`.

    At step s the value is start + (end - start) * clip((s - warmup_steps) / ramp_steps, 0, 1); with
    `ramp_steps` 0 it jumps to `end` at step `warmup_steps`. Like tfmot's pruning schedules, it is a
    callable of the optimizer step (a tensor inside `tf.function`) with `get_config`.

    Example: `LinearRamp(0.0, 0.1, 100, 400)(300)` is 0.05.
    """

    def __init__(self, start, end, warmup_steps, ramp_steps):
        if not (np.isfinite(start) and np.isfinite(end)):
            raise SwtfError(f"ramp start and end must be finite, got {start}, {end}")
        if int(warmup_steps) != warmup_steps or int(ramp_steps) != ramp_steps or min(warmup_steps,
                                                                                    ramp_steps) < 0:
            raise SwtfError(f"warmup_steps and ramp_steps must be integers >= 0, got {warmup_steps}, {ramp_steps}")
        self.start, self.end = float(start), float(end)
        self.warmup_steps, self.ramp_steps = int(warmup_steps), int(ramp_steps)

    def __call__(self, step):
        elapsed = tf.cast(step, tf.float32) - self.warmup_steps
        if self.ramp_steps:
            fraction = tf.clip_by_value(elapsed / self.ramp_steps, 0.0, 1.0)
        else:
            fraction = tf.cast(elapsed >= 0, tf.float32)
        return self.start + (self.end - self.start) * fraction

    def get_config(self):
        return {"start": self.start, "end": self.end, "warmup_steps": self.warmup_steps,
                "ramp_steps": self.ramp_steps}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


RampSchedules = collections.namedtuple("RampSchedules", "eps kappa beta")


def ramp_schedules(eps, kappa_final, warmup_steps, ramp_steps):
    """The schedules of Gowal et al. / Zhang et al. over one ramp: eps 0 -> eps, kappa 1 -> kappa_final,
    beta 1 -> 0."""
    if not (eps >= 0 and np.isfinite(eps)):
        raise SwtfError(f"training eps must be finite and >= 0, got {eps}")
    if not 0.0 <= kappa_final <= 1.0:
        raise SwtfError(f"kappa_final (weight of the clean loss after the ramp) must be in [0, 1], got {kappa_final}")
    return RampSchedules(LinearRamp(0.0, eps, warmup_steps, ramp_steps),
                         LinearRamp(1.0, kappa_final, warmup_steps, ramp_steps),
                         LinearRamp(1.0, 0.0, warmup_steps, ramp_steps))


_LIVE_VERIFIERS = weakref.WeakKeyDictionary()  # keras model -> float32 Verifier on its live variables


def live_verifier(model):
    """A float32 `Verifier` of `model` that reads its Keras variables at every call (cached per model).

    Built eagerly (`tf.init_scope`) even when first asked for while a training step is being traced.

    Raises:
      SwtfError: if a trainable variable does not enter the bounds (only Dense and Conv2D kernels and
        biases are bound), since training it would ignore the certified loss.
    """
    if model not in _LIVE_VERIFIERS:
        with tf.init_scope():
            network = from_keras(model)
        bound = {id(v) for node in network.nodes for v in node.sources.values()}
        unbound = [v.path for v in model.trainable_variables if id(v) not in bound]
        if unbound:
            raise SwtfError(f"certified training bounds only Dense and Conv2D weights, but {unbound} are "
                            "trainable too; freeze them (layer.trainable = False) or remove those layers")
        with tf.init_scope():
            _LIVE_VERIFIERS[model] = Verifier(network, tf.float32, live=True)
    return _LIVE_VERIFIERS[model]


def live_margin_bounds(model, x, y, eps, method="ibp", clip=(0.0, 1.0)):
    """(N, K) float32 lower bounds of f_y - f_j over the L-inf ball of radius `eps` around each x.

    Differentiable in the model's weights. The entry j = y is 0 (the margin f_y - f_y), so `-bounds`
    are the worst-case logits. `eps` is a scalar (tensor); `method` is 'ibp' or 'crown-ibp'.
    """
    if method not in METHODS:
        raise SwtfError(f"certified training method must be one of {', '.join(METHODS)}, got {method!r}")
    verifier = live_verifier(model)
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.int32)
    eps = tf.fill(tf.shape(x)[:1], tf.cast(eps, tf.float32))
    num_classes = verifier.network.output_size
    inputs = input_set("linf", x, eps, clip)
    lower = verifier.spec_lower_bounds(inputs, specs.margin_spec(y, num_classes, tf.float32), method)
    return tf.where(tf.one_hot(y, num_classes) > 0, 0.0, lower)


def _cross_entropy(logits, y):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def certified_loss(method, eps_schedule, kappa_schedule, beta_schedule=None, *, clip=(0.0, 1.0)):
    """A `loss_fn(model, batch, step)` for `swtf.train.fit`: kappa * clean CE + (1 - kappa) * robust CE.

    Args:
      method: 'ibp' or 'crown-ibp'.
      eps_schedule, kappa_schedule: callables of the optimizer step (e.g. from `ramp_schedules`).
      beta_schedule: for 'crown-ibp' only (required there): the weight of CROWN-IBP against IBP.
      clip: the input domain (low, high) the L-inf ball is intersected with, or None.

    The robust term (and with beta 0, the CROWN-IBP pass) is skipped while its weight is 0.
    """
    if method not in METHODS:
        raise SwtfError(f"certified training method must be one of {', '.join(METHODS)}, got {method!r}")
    if (method == "crown-ibp") != (beta_schedule is not None):
        raise SwtfError(f"method {method!r} {'needs' if beta_schedule is None else 'takes no'} beta_schedule "
                        "(the CROWN-IBP / IBP mixing weight; see ramp_schedules)")

    def robust_margins(model, x, y, eps, step):
        ibp = live_margin_bounds(model, x, y, eps, "ibp", clip)
        if beta_schedule is None:
            return ibp
        beta = beta_schedule(step)
        return tf.cond(beta > 0, lambda: beta * live_margin_bounds(model, x, y, eps, method, clip)
                       + (1 - beta) * ibp, lambda: ibp)

    def loss_fn(model, batch, step):
        x, y = batch[0], tf.cast(batch[1], tf.int32)
        kappa = kappa_schedule(step)
        clean = _cross_entropy(model(x, training=True), y)
        robust = tf.cond(kappa < 1, lambda: _cross_entropy(-robust_margins(model, x, y, eps_schedule(step), step),
                                                           y), lambda: tf.zeros([]))
        return kappa * clean + (1 - kappa) * robust

    return loss_fn


def ramped_certified_loss(method, eps, kappa_final, warmup_steps, ramp_steps, *, clip=(0.0, 1.0)):
    """`certified_loss` on one ramp of `ramp_schedules` (beta mixing for 'crown-ibp' only)."""
    schedules = ramp_schedules(eps, kappa_final, warmup_steps, ramp_steps)
    beta = schedules.beta if method == "crown-ibp" else None
    return certified_loss(method, schedules.eps, schedules.kappa, beta, clip=clip)


def certified_accuracy(model, x, y, eps, *, method="crown", clip=(0.0, 1.0), batch_size=256):
    """Fraction of (x, y) certified at L-inf radius `eps` by the engine (float64, sound), in batches."""
    certified = [np.all(api.margin_bounds(model, x[i:i + batch_size], y[i:i + batch_size], eps, method=method,
                                          clip=clip) > 0, axis=1) for i in range(0, len(x), batch_size)]
    return float(np.mean(np.concatenate(certified))) if certified else float("nan")


def certified_monitor(x_val, y_val, eps, method="ibp", clip=(0.0, 1.0)):
    """A `fit` monitor: certified validation accuracy at `eps`, which selects the kept epoch instead of clean
    accuracy (under certified training the clean-best epoch is a warm-up epoch)."""
    return "val_certified_accuracy", lambda model: certified_accuracy(model, x_val, y_val, eps, method=method,
                                                                      clip=clip)
