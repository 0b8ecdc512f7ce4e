"""Linear relaxation of max pooling, any pool size, strides and padding (TF semantics).

Each output y = max_{i in W} x_i is the largest in-bounds element of its window W ('same' padding adds
positions that never win, as in TF). Given bounds l_i <= x_i <= u_i of the window's inputs, let j be the
input with the largest lower bound (argmax_i l_i). The rule (DeepPoly's, Singh et al. 2019, for any window):

  lower line:  y >= x_j                                 (y is at least every element of its window);
  upper line:  y <= x_j       if l_j >= u_i for every i != j (x_j provably dominates: then y = x_j exactly);
               y <= max_i u_i otherwise                 (a constant).

Why this one: it is sound for overlapping windows, stride 1, 'same' padding and global pooling alike (it
never assumes a window partition), exact whenever one input dominates its window (common after training,
and the case that matters most for tightness), and costs one gather/scatter per backward step. auto_LiRPA
bounds max pooling only when the stride equals the pool size; its upper line there is also constant unless
an input dominates. Tighter upper bounds of a max are not single lines over one input (the convex hull of
the max over a box has one facet per subset of the window), so the constant is kept.

Backward (a lower bound of <A, y>): A+ takes the lower line and A- the upper line, so the coefficient
A+ + A- * dominant goes to x_j, and the constant contributes <A- * (1 - dominant), max_i u_i>.
The coefficients of all outputs are scattered onto the input positions they select (windows may overlap,
so several outputs can select one input; their coefficients add).

IBP is exact: [maxpool(l), maxpool(u)] elementwise.
"""

import collections
import math

import numpy as np
import tensorflow as tf

from swtf.certify.network import pool_pads

MaxPoolRelaxation = collections.namedtuple("MaxPoolRelaxation", "index dominant upper_bound")
MaxPoolRelaxation.__doc__ = """Per output (N, OH, OW, C): `index` the flat input index (into H * W * C) of
the window's input with the largest lower bound, `dominant` whether it provably dominates its window,
`upper_bound` the window's largest upper bound."""


def window_table(params, in_shape):
    """(OH, OW, C, ph * pw) int32 flat input indices of every window position; padding reads index H*W*C."""
    h, w, c = in_shape
    (ph, pw), (sh, sw) = params["pool"], params["strides"]
    top, bottom, left, right = pool_pads(params, in_shape)
    out_h, out_w = (h + top + bottom - ph) // sh + 1, (w + left + right - pw) // sw + 1
    rows = np.arange(out_h)[:, None] * sh - top + np.arange(ph)[None, :]  # (OH, ph)
    cols = np.arange(out_w)[:, None] * sw - left + np.arange(pw)[None, :]  # (OW, pw)
    r = rows[:, None, :, None]  # (OH, 1, ph, 1)
    q = cols[None, :, None, :]  # (1, OW, 1, pw)
    inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
    flat = np.where(inside, (r * w + q) * c, h * w * c)  # (OH, OW, ph, pw), channel 0
    table = flat[:, :, None] + np.where(inside, 1, 0)[:, :, None] * np.arange(c)[None, None, :, None, None]
    return table.reshape(out_h, out_w, c, ph * pw).astype(np.int32)


def _windows(values, table, fill):
    """(N, OH, OW, C, K) window elements of (N, H, W, C) `values`, padded positions `fill`."""
    n = tf.shape(values)[0]
    flat = tf.reshape(values, [n, -1])
    flat = tf.concat([flat, tf.fill([n, 1], tf.cast(fill, values.dtype))], 1)
    return tf.gather(flat, table, axis=1)


def max_pool_relaxation(params, in_shape, lower, upper):
    """The `MaxPoolRelaxation` of a max_pool node with `params` for input bounds `lower`, `upper`."""
    table = tf.constant(window_table(params, tuple(in_shape)))
    lower_windows = _windows(lower, table, -np.inf)
    upper_windows = _windows(upper, table, -np.inf)
    best = tf.argmax(lower_windows, axis=-1, output_type=tf.int32)
    chosen = tf.one_hot(best, table.shape[-1], on_value=True, off_value=False)
    index = tf.reduce_sum(tf.where(chosen, table, tf.zeros_like(table)), axis=-1)
    others = tf.reduce_max(tf.where(chosen, tf.constant(-np.inf, upper.dtype), upper_windows), axis=-1)
    dominant = tf.reduce_max(tf.where(chosen, lower_windows, tf.constant(-np.inf, lower.dtype)), axis=-1) >= others
    return MaxPoolRelaxation(index, dominant, tf.reduce_max(upper_windows, axis=-1))


def max_pool_backward(relaxation, a, n, s, in_shape):
    """Coefficients before the max pool node, (N * S, *in_shape), and the bias terms (N * S,) of a lower
    bound of <a, y> for `a` (N * S, OH, OW, C), with each point's relaxation (module docstring)."""
    size = math.prod(in_shape)
    a = tf.reshape(a, [n, s, -1])
    a_pos, a_neg = tf.maximum(a, 0), tf.minimum(a, 0)
    dominant = tf.cast(tf.reshape(relaxation.dominant, [n, 1, -1]), a.dtype)
    coefficients = a_pos + a_neg * dominant
    term = tf.reduce_sum(a_neg * (1 - dominant) * tf.reshape(relaxation.upper_bound, [n, 1, -1]), axis=-1)
    rows = tf.range(n * s)[:, None] * size  # each (point, spec row) owns `size` segments
    targets = rows + tf.repeat(tf.reshape(relaxation.index, [n, -1]), s, axis=0)
    a_in = tf.math.unsorted_segment_sum(tf.reshape(coefficients, [-1]), tf.reshape(targets, [-1]), n * s * size)
    return tf.reshape(a_in, tf.concat([[n * s], in_shape], 0)), tf.reshape(term, [-1])


def max_pool_output_box(relaxation, lower, upper):
    """The box the relaxed output lies in, as far as CROWN bounds are concerned, for input bounds
    [lower, upper] enclosing CROWN's (see `sparse_crown`): [l_j, u_j if dominant else max_i u_i]."""
    n = tf.shape(lower)[0]
    flat_index = tf.reshape(relaxation.index, [n, -1])
    low = tf.reshape(tf.gather(tf.reshape(lower, [n, -1]), flat_index, batch_dims=1), tf.shape(relaxation.index))
    high = tf.reshape(tf.gather(tf.reshape(upper, [n, -1]), flat_index, batch_dims=1), tf.shape(relaxation.index))
    return low, tf.where(relaxation.dominant, high, relaxation.upper_bound)
