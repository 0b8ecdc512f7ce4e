"""The CROWN / DeepPoly linear relaxation of ReLU on a pre-activation interval [l, u].

For every neuron, two linear functions enclose relu on [l, u]:
  lower_slope * x  <=  relu(x)  <=  upper_slope * x + upper_intercept.
  stably active   (l >= 0):      lower_slope = upper_slope = 1, intercept 0 (exact);
  stably inactive (u <= 0):      lower_slope = upper_slope = 0, intercept 0 (exact);
  unstable        (l < 0 < u):   the upper bound is the chord through (l, 0) and (u, u):
                                 upper_slope = u / (u - l), upper_intercept = -l * u / (u - l);
                                 any lower_slope in [0, 1] is valid. CROWN's adaptive choice is
                                 1 if u > -l else 0 (the one with the smaller area; a tie u = -l
                                 takes 0, as auto_LiRPA's `upper_d > 0.5` and DeepPoly do, so that
                                 bounds match theirs on symmetric intervals), and alpha-CROWN
                                 optimises it.
"""

import collections

import tensorflow as tf

Relaxation = collections.namedtuple("Relaxation", "lower_slope upper_slope upper_intercept unstable")


def relu_relaxation(lower, upper):
    """The adaptive CROWN relaxation for pre-activation bounds `lower`, `upper` (same shape)."""
    active = lower >= 0
    unstable = tf.logical_and(lower < 0, upper > 0)
    one, zero = tf.ones_like(lower), tf.zeros_like(lower)
    width = tf.where(unstable, upper - lower, one)
    upper_slope = tf.where(active, one, tf.where(unstable, upper / width, zero))
    upper_intercept = tf.where(unstable, -lower * upper_slope, zero)
    adaptive = tf.logical_and(unstable, upper > -lower)
    lower_slope = tf.cast(tf.logical_or(active, adaptive), lower.dtype)
    return Relaxation(lower_slope, upper_slope, upper_intercept, unstable)
