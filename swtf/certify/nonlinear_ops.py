"""TensorFlow rules for the nonlinear primitives of a `Network`: ReLU, sigmoid, tanh and max pooling.

Every nonlinear op is given by five functions, which the methods' drivers call without knowing the op:
  apply(params, x)                          its value (TF);
  interval(params, lower, upper)            IBP bounds of its output from bounds of its input;
  relax(params, in_shape, lower, upper)     its linear relaxation (a namedtuple of (N, ...) tensors) for
                                            bounds of its input: the lines a backward pass uses;
  backward(relaxation, a, alpha, n, s, in_shape)
                                            coefficients on its input and bias terms of a lower bound of
                                            <a, output> (a: (N * S, *output shape)), with optional
                                            optimised lower slopes `alpha` (alpha-CROWN);
  output_box(relaxation, lower, upper)      the box its relaxed output lies in as far as CROWN is
                                            concerned, for input bounds enclosing CROWN's (`sparse_crown`).

Elementwise activations share one backward rule: with lines ls * x + li <= f(x) <= us * x + ui,

    <A, f(x)>  >=  <A+ * ls + A- * us, x> + <A+, li> + <A-, ui>,

(the ReLU's lower intercept is 0 and is left out). Only the ReLU has slopes alpha-CROWN optimises (its
unstable neurons' lower slopes, any value in [0, 1]); sigmoid and tanh keep CROWN's tangent and chord
lines, max pooling its selection.

Adding a nonlinear op means adding one entry to `NONLINEAR_RULES` (and its NumPy reference in
`network`); the traversals do not change.
"""

import collections

import tensorflow as tf

from swtf.certify.max_pool_relaxation import max_pool_backward, max_pool_output_box, max_pool_relaxation
from swtf.certify.network import tf_pool_args
from swtf.certify.perturbation import rounding_margin
from swtf.certify.relu_relaxation import relu_relaxation
from swtf.certify.sigmoid_tanh_relaxation import FUNCTIONS, smooth_relaxation

NonlinearRule = collections.namedtuple("NonlinearRule", "apply interval relax backward output_box")


def _sum_features(t):
    return tf.reduce_sum(t, axis=list(range(1, t.shape.rank)))


def elementwise_backward(relaxation, a, alpha, n, s, shape):
    """The elementwise rule above: coefficients (N * S, *shape) before the activation and bias terms (N * S,)."""
    a = tf.reshape(a, tf.concat([[n, s], shape], 0))
    a_pos, a_neg = tf.maximum(a, 0), tf.minimum(a, 0)
    lower_slope = relaxation.lower_slope[:, None]
    if alpha is not None:
        lower_slope = tf.where(relaxation.unstable[:, None], alpha, lower_slope)
    a_in = a_pos * lower_slope + a_neg * relaxation.upper_slope[:, None]
    bias = a_neg * relaxation.upper_intercept[:, None]
    if hasattr(relaxation, "lower_intercept"):
        bias += a_pos * relaxation.lower_intercept[:, None]
    flat = tf.concat([[n * s], shape], 0)
    return tf.reshape(a_in, flat), _sum_features(tf.reshape(bias, flat))


def _relu_output_box(relaxation, lower, upper):
    """[lower_slope * l, relu(u)] (see `sparse_crown`)."""
    return relaxation.lower_slope * lower, tf.nn.relu(upper)


def _smooth_output_box(relaxation, lower, upper):
    """[ls * l + li, us * u + ui]: both slopes are non-negative, so the lines are extreme at those ends."""
    return (relaxation.lower_slope * lower + relaxation.lower_intercept,
            relaxation.upper_slope * upper + relaxation.upper_intercept)


def _monotone_interval(function):
    """IBP of an increasing function: [f(l), f(u)], moved outward by its rounding (|f| <= 1)."""
    def interval(params, lower, upper):
        return (function(lower) - rounding_margin(tf.ones_like(lower)),
                function(upper) + rounding_margin(tf.ones_like(upper)))
    return interval


def _smooth_rule(op):
    function = FUNCTIONS[op].function
    return NonlinearRule(
        apply=lambda params, x: function(x),
        interval=_monotone_interval(function),
        relax=lambda params, in_shape, lower, upper: smooth_relaxation(op, lower, upper),
        backward=lambda relaxation, a, alpha, n, s, shape: elementwise_backward(relaxation, a, None, n, s, shape),
        output_box=_smooth_output_box)


NONLINEAR_RULES = {
    "relu": NonlinearRule(
        apply=lambda params, x: tf.nn.relu(x),
        interval=lambda params, lower, upper: (tf.nn.relu(lower), tf.nn.relu(upper)),
        relax=lambda params, in_shape, lower, upper: relu_relaxation(lower, upper),
        backward=elementwise_backward,
        output_box=_relu_output_box),
    "sigmoid": _smooth_rule("sigmoid"),
    "tanh": _smooth_rule("tanh"),
    "max_pool": NonlinearRule(
        apply=lambda params, x: tf.nn.max_pool2d(x, **tf_pool_args(params)),
        interval=lambda params, lower, upper: (tf.nn.max_pool2d(lower, **tf_pool_args(params)),
                                               tf.nn.max_pool2d(upper, **tf_pool_args(params))),
        relax=max_pool_relaxation,
        backward=lambda relaxation, a, alpha, n, s, in_shape: max_pool_backward(relaxation, a, n, s, in_shape),
        output_box=max_pool_output_box),
}

# The ops whose relaxation has lower slopes alpha-CROWN optimises (Relaxation.unstable marks which).
OPTIMIZABLE_OPS = ("relu",)
