"""Linear relaxations of sigmoid and tanh on a pre-activation interval [l, u] (CROWN, Zhang et al. 2018).

f (sigmoid or tanh) is increasing, convex on x <= 0 and concave on x >= 0, and f' is even. For every
neuron two lines enclose f on [l, u]:  lower_slope * x + lower_intercept <= f(x) <= upper_slope * x +
upper_intercept. The slopes are CROWN's:

  u <= 0 (f convex):   upper = the chord through (l, f(l)) and (u, f(u)); lower = the tangent at (l + u) / 2.
  l >= 0 (f concave):  lower = the chord; upper = the tangent at (l + u) / 2.
  l < 0 < u:           upper = the chord if its slope k < f'(u) (then it lies above f), else the tangent at
                       the d >= 0 whose tangent passes through (l', f(l')); lower = the chord if k < f'(l),
                       else the tangent at the d <= 0 through (u', f(u')). As in auto_LiRPA (0.3 to 0.7.1,
                       which read d from a table on a 0.01 grid), the far end is first rounded outward to
                       the grid: l' = -(floor(-l / 0.01) + 1) * 0.01, u' = (floor(u / 0.01) + 1) * 0.01;
                       and as in auto_LiRPA 0.7.1 ("smoothness enhancement"), where that d lies beyond the
                       midpoint m = (l + u) / 2 (d >= m for the lower line, d < m for the upper one) the
                       tangent at m is used instead (still valid: it touches f further inside the convex,
                       resp. concave, part). d is found by bisection on [0, -l'] (resp. [-u', 0]), where
                       the tangent's value at the far end is monotone in d. Neither choice is tighter
                       everywhere; this one makes swtf's CROWN reproduce auto_LiRPA's lines.

The intercepts are not read off those constructions but computed exactly for the chosen slope s, so a
slope that is slightly off (a rounded chord, an approximate d) costs tightness, never soundness:

  upper_intercept = max over [l, u] of g(x) = f(x) - s * x,   lower_intercept = min over [l, u] of g.

g'' = f'' makes g concave on x >= 0 and convex on x <= 0, so an interior maximum of g is the unique
x+ >= 0 with f'(x+) = s and an interior minimum is x- = -x+ (f' is even); with x+ clamped to [l, u]
(a point of [l, u] never raises the maximum above the true one),

  max g = max(g(l), g(u), g(clamp(x+))),   min g = min(g(l), g(u), g(clamp(-x+))).

x+ has a closed form: sigmoid: f' = f (1 - f) = s gives x+ = 2 log(1 + r) - log(4 s), r = sqrt(1 - 4 s)
(0 < s < 1/4); tanh: f' = 1 - f^2 = s gives x+ = log(1 + t) - log(s) / 2, t = sqrt(1 - s) (0 < s < 1),
both written without the cancellation of 1 - f for small s. Where s is outside those ranges g is
monotone and the endpoints hold both extremes.

Rounding: g is evaluated in the verifier's dtype; an error in x+ changes g(x+) only to second order
(g'(x+) = 0). Each intercept is moved outward by REL * (1 + |s| * max(|l|, |u|)) + ABS (REL, ABS as in
`perturbation`; |f| <= 1), far above those errors in float64.
"""

import collections

import tensorflow as tf

from swtf.certify.perturbation import rounding_margin

SmoothRelaxation = collections.namedtuple("SmoothRelaxation",
                                          "lower_slope lower_intercept upper_slope upper_intercept")

# Intervals narrower than this (relative to 1 + max(|l|, |u|)) take the midpoint tangent's slope for the chord.
CHORD_MIN_WIDTH = 1e-6

# The grid the far end of a mixed interval is rounded outward to before its tangent point is found.
TANGENT_GRID = 0.01


def _grid_outward(distance):
    """(floor(distance / TANGENT_GRID) + 1) * TANGENT_GRID for distances >= 0: the next grid point beyond."""
    return (tf.floor(distance / TANGENT_GRID) + 1) * TANGENT_GRID


# Bisection steps for the tangent point d: 60 halvings of [0, -l'] (or [-u', 0]) reach float64 resolution.
BISECTION_STEPS = 60


def _sigmoid_derivative(x):
    return tf.sigmoid(x) * tf.sigmoid(-x)


def _sigmoid_peak(slope):
    """x+ >= 0 with sigmoid'(x+) = slope, for 0 < slope < 1/4 (0 elsewhere: then g is monotone)."""
    inside = (slope > 0) & (slope < 0.25)
    s = tf.where(inside, slope, 0.125 * tf.ones_like(slope))
    r = tf.sqrt(1 - 4 * s)
    return tf.where(inside, 2 * tf.math.log1p(r) - tf.math.log(4 * s), tf.zeros_like(s))


def _tanh_derivative(x):
    return tf.math.reciprocal(tf.square(tf.cosh(x)))


def _tanh_peak(slope):
    """x+ >= 0 with tanh'(x+) = slope, for 0 < slope < 1 (0 elsewhere)."""
    inside = (slope > 0) & (slope < 1)
    s = tf.where(inside, slope, 0.5 * tf.ones_like(slope))
    t = tf.sqrt(1 - s)
    return tf.where(inside, tf.math.log1p(t) - 0.5 * tf.math.log(s), tf.zeros_like(s))


Shape = collections.namedtuple("Shape", "function derivative peak")

FUNCTIONS = {
    "sigmoid": Shape(tf.sigmoid, _sigmoid_derivative, _sigmoid_peak),
    "tanh": Shape(tf.tanh, _tanh_derivative, _tanh_peak),
}


def _tangent_point(shape, far, low, high):
    """The d in [low, high] whose tangent passes through (far, f(far)), by bisection; returns the end whose
    tangent is on f(far)'s side for which `high` holds (only tightness depends on the precision)."""
    f_far = shape.function(far)

    def passes_above(d):
        return shape.function(d) + shape.derivative(d) * (far - d) >= f_far

    high_above = passes_above(high)
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        same = tf.equal(passes_above(mid), high_above)
        high = tf.where(same, mid, high)
        low = tf.where(same, low, mid)
    return high


def _intercepts(shape, slope, lower, upper):
    """(min, max) over [lower, upper] of f(x) - slope * x, moved outward (module docstring)."""
    peak = shape.peak(slope)
    candidates = [lower, upper, tf.clip_by_value(peak, lower, upper), tf.clip_by_value(-peak, lower, upper)]
    values = [shape.function(x) - slope * x for x in candidates]
    margin = rounding_margin(1 + tf.abs(slope) * tf.maximum(tf.abs(lower), tf.abs(upper)))
    low = tf.minimum(tf.minimum(values[0], values[1]), values[3])
    high = tf.maximum(tf.maximum(values[0], values[1]), values[2])
    return low - margin, high + margin


def smooth_relaxation(op, lower, upper):
    """The CROWN relaxation of `op` ('sigmoid' or 'tanh') for pre-activation bounds `lower`, `upper`."""
    shape = FUNCTIONS[op]
    f_lower, f_upper = shape.function(lower), shape.function(upper)
    width = upper - lower
    # Below CHORD_MIN_WIDTH the chord's slope is mostly rounding (f(u) - f(l) cancels): there the chord and
    # the tangent at the midpoint differ by at most f'' * width / 2, and the tangent's slope is exact.
    wide = width > CHORD_MIN_WIDTH * (1 + tf.maximum(tf.abs(lower), tf.abs(upper)))
    midpoint_slope = shape.derivative((lower + upper) / 2)
    chord = tf.where(wide, (f_upper - f_lower) / tf.where(wide, width, tf.ones_like(width)), midpoint_slope)
    convex, concave = upper <= 0, lower >= 0
    zero, midpoint = tf.zeros_like(lower), (lower + upper) / 2
    far_left, far_right = -_grid_outward(tf.nn.relu(-lower)), _grid_outward(tf.nn.relu(upper))
    upper_point = _tangent_point(shape, far_left, zero, -far_left)
    lower_point = _tangent_point(shape, far_right, zero, -far_right)
    upper_tangent = shape.derivative(tf.where(upper_point < midpoint, midpoint, upper_point))
    lower_tangent = shape.derivative(tf.where(lower_point >= midpoint, midpoint, lower_point))
    upper_slope = tf.where(convex, chord, tf.where(concave, midpoint_slope,
                                                   tf.where(chord < shape.derivative(upper), chord, upper_tangent)))
    lower_slope = tf.where(concave, chord, tf.where(convex, midpoint_slope,
                                                    tf.where(chord < shape.derivative(lower), chord, lower_tangent)))
    lower_intercept, _ = _intercepts(shape, lower_slope, lower, upper)
    _, upper_intercept = _intercepts(shape, upper_slope, lower, upper)
    return SmoothRelaxation(lower_slope, lower_intercept, upper_slope, upper_intercept)
