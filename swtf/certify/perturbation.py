"""Input sets (the perturbation a certificate covers) and their concretisation with outward rounding.

`LinfBox(lower, upper)`: x in [lower, upper] elementwise. An L-inf ball of radius eps around x0
intersected with the input domain `clip = (lo, hi)` is exactly the box [max(x0 - eps, lo),
min(x0 + eps, hi)].

`L2Ball(center, eps)`: ||x - center||_2 <= eps. The input domain box is *not* intersected: the
intersection of a ball and a box has no closed-form support function, and dropping the box only
enlarges the set, so every bound stays sound (just possibly looser).

`concretize(a)` returns a lower bound of min_{x in set} <a, x> for every row of `a`, from the dual norm:
  box:  <a, c> - <|a|, r>                  with c, r the box centre and radius;
  ball: <a, c> - eps * ||a||_2.

Soundness and floating point: bounds are computed in float64 (float32 optional). To keep rounding from
flipping a proof, `outward` lowers each final bound by REL * magnitude + ABS, where `magnitude` sums the
absolute values of every term the bound was computed from (<|a|, |c| + r> and the |bias| terms). With
REL = 1e-9 in float64 this covers a relative error of about 4.5e6 unit roundoffs of those terms, far
above the accumulated error of the dot products of networks this size. "Sound" then means: the bounds
hold for the exact real-arithmetic evaluation of the network with the model's float weights, on every
point of the input set. A deployed model evaluated in float32 adds its own rounding, which no
certificate on the real-valued network covers. In float32 mode REL = 1e-4 (about 800 unit roundoffs), a
heuristic rather than a guarantee; use float64 for proofs.
"""

import collections

import tensorflow as tf

_REL = {tf.float64: 1e-9, tf.float32: 1e-4}
_ABS = {tf.float64: 1e-12, tf.float32: 1e-7}


def _sum_features(t, keep=2):
    """Sum over every axis after the first `keep` (batch, spec)."""
    return tf.reduce_sum(t, axis=list(range(keep, t.shape.rank)))


def _expand_spec(t):
    return tf.expand_dims(t, 1)


def rounding_margin(magnitude):
    """REL * magnitude + ABS in `magnitude`'s dtype: how far a value computed from terms summing to
    `magnitude` in absolute value is moved outward (see the module docstring)."""
    return _REL[magnitude.dtype] * magnitude + _ABS[magnitude.dtype]


def outward(lower, magnitude):
    """Lowers `lower` by the rounding margin REL * magnitude + ABS (see the module docstring)."""
    return lower - rounding_margin(magnitude)


class LinfBox(collections.namedtuple("LinfBox", "lower upper")):
    """x in [lower, upper]; both (N, *input_shape)."""

    __slots__ = ()

    def box(self):
        return self.lower, self.upper

    def concretize(self, a):
        """(value, magnitude), each (N, S): min_x <a, x> over the box for `a` of shape (N, S, *shape)."""
        center = _expand_spec((self.upper + self.lower) / 2)
        radius = _expand_spec((self.upper - self.lower) / 2)
        abs_a = tf.abs(a)
        value = _sum_features(a * center) - _sum_features(abs_a * radius)
        return value, _sum_features(abs_a * (tf.abs(center) + radius))


class L2Ball(collections.namedtuple("L2Ball", "center eps")):
    """||x - center||_2 <= eps; center (N, *input_shape), eps (N,)."""

    __slots__ = ()

    def box(self):
        """The tightest box around the ball: center +- eps in every coordinate."""
        eps = tf.reshape(self.eps, [-1] + [1] * (self.center.shape.rank - 1))
        return self.center - eps, self.center + eps

    def concretize(self, a):
        """(value, magnitude), each (N, S): <a, c> - eps * ||a||_2 for `a` of shape (N, S, *shape)."""
        center = _expand_spec(self.center)
        squares = _sum_features(a * a)
        # ||a||_2 with a zero (not NaN) gradient at a = 0, where sqrt's derivative is infinite: a zero
        # row (e.g. a spec row cancelled by inactive ReLUs) would otherwise turn alpha-CROWN's slopes NaN.
        positive = squares > 0
        norm = tf.where(positive, tf.sqrt(tf.where(positive, squares, tf.ones_like(squares))), tf.zeros_like(squares))
        dual = norm * self.eps[:, None]
        return _sum_features(a * center) - dual, _sum_features(tf.abs(a) * tf.abs(center)) + dual


def input_set(norm, x, eps, clip):
    """The input set for points `x` (N, *shape) and radii `eps` (N,) under `norm` ('linf' or 'l2')."""
    if norm == "l2":
        return L2Ball(x, eps)
    eps = tf.reshape(eps, [-1] + [1] * (x.shape.rank - 1))
    lower, upper = x - eps, x + eps
    if clip is not None:
        lower = tf.maximum(lower, tf.cast(clip[0], x.dtype))
        upper = tf.minimum(upper, tf.cast(clip[1], x.dtype))
    return LinfBox(lower, upper)
