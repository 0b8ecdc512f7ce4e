"""Tests of the max pooling, sigmoid and tanh rules: hand-computed relaxations, an independent NumPy/SciPy
reference of the sigmoid/tanh lines, sampled soundness of every method on pooled and smooth networks in
every pooling geometry and norm, and certified training through max pooling."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import optimize

from swtf import certify
from swtf.certify.max_pool_relaxation import max_pool_backward, max_pool_relaxation
from swtf.certify.network import NetworkBuilder, forward, same_pads
from swtf.certify.sampling import perturbation_samples
from swtf.certify.sigmoid_tanh_relaxation import smooth_relaxation

# --- max pooling: hand-computed windows --------------------------------------------------------------------


def _window_bounds(lower, upper):
    """A single 2x2 window (1, 2, 2, 1) from four input bounds listed row-major."""
    return (tf.constant(np.reshape(lower, (1, 2, 2, 1)), tf.float64),
            tf.constant(np.reshape(upper, (1, 2, 2, 1)), tf.float64))


POOL_2X2 = {"pool": (2, 2), "strides": (2, 2), "padding": "valid"}


def test_max_pool_window_with_a_dominant_input_is_exact():
    # x0 in [3, 4] is above every other input's upper bound (2.5): y = x0 exactly.
    relaxation = max_pool_relaxation(POOL_2X2, (2, 2, 1), *_window_bounds([3, 0, 1, -1], [4, 2, 2.5, 0]))
    assert relaxation.index.numpy().item() == 0
    assert relaxation.dominant.numpy().item()
    # Both signs of a coefficient land on x0 with no constant term.
    for coefficient in (2.0, -3.0):
        a_in, term = max_pool_backward(relaxation, tf.constant([[[[coefficient]]]], tf.float64), 1, 1, (2, 2, 1))
        np.testing.assert_array_equal(a_in.numpy().reshape(-1), [coefficient, 0, 0, 0])
        assert term.numpy().item() == 0


def test_max_pool_window_without_a_dominant_input_uses_the_largest_upper_bound():
    # The largest lower bound is x2's (1.5) but x1 may exceed it (up to 3): y >= x2 and y <= 3.
    relaxation = max_pool_relaxation(POOL_2X2, (2, 2, 1), *_window_bounds([0, 1, 1.5, -2], [2, 3, 2, 0]))
    assert relaxation.index.numpy().item() == 2
    assert not relaxation.dominant.numpy().item()
    assert relaxation.upper_bound.numpy().item() == 3
    a_in, term = max_pool_backward(relaxation, tf.constant([[[[2.0]]]], tf.float64), 1, 1, (2, 2, 1))
    np.testing.assert_array_equal(a_in.numpy().reshape(-1), [0, 0, 2, 0])  # lower line: 2 * x2
    assert term.numpy().item() == 0
    a_in, term = max_pool_backward(relaxation, tf.constant([[[[-2.0]]]], tf.float64), 1, 1, (2, 2, 1))
    np.testing.assert_array_equal(a_in.numpy().reshape(-1), [0, 0, 0, 0])  # upper line: the constant 3
    assert term.numpy().item() == -6


def test_same_padding_never_wins_a_window():
    # 3x3 'same' pooling of a 2x2 map of negative values: TF pads, but a padded zero must never be the max.
    builder = NetworkBuilder((2, 2, 1))
    network = builder.build(builder.max_pool(0, (3, 3), (1, 1), "same", "pool"))
    x = -np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(forward(network, x), np.full((1, 2, 2, 1), -1.0))
    np.testing.assert_array_equal(forward(network, x), tf.nn.max_pool2d(tf.constant(x), 3, 1, "SAME").numpy())
    lower, upper = certify.bounds(_flattened(network), x, 0.1, clip=None)
    assert np.all(upper <= -0.9 + 1e-8) and np.all(lower >= -1.1 - 1e-8)


def _flattened(network):
    """`network` with its output flattened (the public API bounds vector outputs)."""
    builder = NetworkBuilder(network.input_shape)
    builder._nodes = list(network.nodes)
    return builder.build(builder.reshape(len(network.nodes) - 1, (-1,), "flatten"))


# --- sigmoid and tanh: hand cases and an independent reference -----------------------------------------

FUNCTIONS = {
    "sigmoid": (lambda x: 0.5 * (1 + np.tanh(x / 2)), lambda x: np.exp(-abs(x)) / (1 + np.exp(-abs(x))) ** 2),
    "tanh": (np.tanh, lambda x: 4 * np.exp(-2 * abs(x)) / (1 + np.exp(-2 * abs(x))) ** 2),
}


def _reference_lines(op, l, u):
    """CROWN's lines for one interval, computed independently: SciPy root finding for the tangent points,
    then for each slope s the intercept where the line touches f on [l, u] (an endpoint, or the tangent
    point when it lies inside): ((lower slope, intercept), (upper slope, intercept))."""
    f, df = FUNCTIONS[op]
    m = (l + u) / 2
    if u - l <= 1e-6 * (1 + max(abs(l), abs(u))):  # CHORD_MIN_WIDTH: the chord's slope would be rounding
        slopes = (df(m), df(m))
    else:
        k = (f(u) - f(l)) / (u - l)
        if u <= 0:
            slopes = (df(m), k)
        elif l >= 0:
            slopes = (k, df(m))
        else:
            # The far end rounded outward to auto_LiRPA's 0.01 grid, the tangent point through it, and the
            # midpoint's tangent where that point lies beyond the midpoint (auto_LiRPA 0.7.1).
            far_left, far_right = -(math.floor(-l / 0.01) + 1) * 0.01, (math.floor(u / 0.01) + 1) * 0.01
            d_up = optimize.brentq(lambda d: f(d) + df(d) * (far_left - d) - f(far_left), 0, -far_left,
                                   xtol=1e-15)
            d_low = optimize.brentq(lambda d: f(d) + df(d) * (far_right - d) - f(far_right), -far_right, 0,
                                    xtol=1e-15)
            slopes = (k if k < df(l) else df(m if d_low >= m else d_low),
                      k if k < df(u) else df(m if d_up < m else d_up))

    def touching(s, side):
        """min (side -1) or max (+1) over [l, u] of f(x) - s x: at an endpoint or where f'(x) = s."""
        candidates = [l, u] + [x for x in (optimize.brentq(lambda t: df(t) - s, 0, 50) if 0 < s < df(0) else None,)
                               if x is not None for x in (x, -x) if l <= x <= u]
        values = [f(x) - s * x for x in candidates]
        return min(values) if side < 0 else max(values)

    return (slopes[0], touching(slopes[0], -1)), (slopes[1], touching(slopes[1], +1))


INTERVALS = [(-3.0, -1.0), (1.0, 3.0), (-0.5, 0.2), (-0.2, 4.0), (-4.0, 0.3), (-2.0, 2.0), (-30.0, 25.0),
             (-1e3, 1e3), (0.3, 0.3 + 1e-13), (-5.0, -5.0), (40.0, 41.0), (-1e-3, 3e-3), (-2.74, 0.6)]


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_smooth_lines_match_an_independent_reference(op):
    lower, upper = (tf.constant([b[i] for b in INTERVALS], tf.float64) for i in (0, 1))
    relaxation = smooth_relaxation(op, lower, upper)
    for n, (l, u) in enumerate(INTERVALS):
        (ls, li), (us, ui) = _reference_lines(op, l, u)
        margin = 2e-9 * (1 + max(abs(l), abs(u)))  # the outward rounding margin and the root's precision
        assert relaxation.lower_slope[n].numpy() == pytest.approx(ls, abs=1e-9), (l, u)
        assert relaxation.upper_slope[n].numpy() == pytest.approx(us, abs=1e-9), (l, u)
        assert li - margin <= relaxation.lower_intercept[n].numpy() <= li + 1e-12, (l, u)
        assert ui - 1e-12 <= relaxation.upper_intercept[n].numpy() <= ui + margin, (l, u)


def test_hand_computed_one_sided_sigmoid_lines():
    # On [1, 3] sigmoid is concave: the lower line is the chord, the upper the tangent at 2.
    relaxation = smooth_relaxation("sigmoid", tf.constant([1.0], tf.float64), tf.constant([3.0], tf.float64))
    s1, s2, s3 = (1 / (1 + math.exp(-t)) for t in (1, 2, 3))
    assert relaxation.lower_slope.numpy()[0] == pytest.approx((s3 - s1) / 2, rel=1e-12)
    assert relaxation.lower_intercept.numpy()[0] == pytest.approx(s1 - (s3 - s1) / 2, abs=1e-8)
    assert relaxation.upper_slope.numpy()[0] == pytest.approx(s2 * (1 - s2), rel=1e-12)
    assert relaxation.upper_intercept.numpy()[0] == pytest.approx(s2 - 2 * s2 * (1 - s2), abs=1e-8)


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_smooth_lines_enclose_the_function_on_intervals_from_tiny_to_huge(op):
    rng = np.random.default_rng(0)
    f = FUNCTIONS[op][0]
    for scale in (1e-9, 1e-3, 1.0, 10.0, 1e4):
        l = rng.normal(size=500) * scale
        u = l + np.abs(rng.normal(size=500)) * scale * rng.choice([1e-12, 1e-3, 1.0, 30.0], 500)
        r = smooth_relaxation(op, tf.constant(l), tf.constant(u))
        x = l[:, None] + (u - l)[:, None] * np.linspace(0, 1, 401)[None]
        assert np.all(r.lower_slope.numpy()[:, None] * x + r.lower_intercept.numpy()[:, None] <= f(x))
        assert np.all(r.upper_slope.numpy()[:, None] * x + r.upper_intercept.numpy()[:, None] >= f(x))


# --- sampled soundness of every method ---------------------------------------------------------------

GEOMETRIES = [((2, 2), (2, 2), "valid"), ((3, 3), (1, 1), "same"), ((3, 2), (2, 1), "same"),
              ((2, 3), (1, 2), "valid"), ((3, 3), (2, 2), "same"), ("global", None, None)]


def _pooled_network(rng, geometry, activation, pool_input=False):
    """input 7x5x2 -> conv -> activation -> max pool -> dense -> activation -> logits, or with `pool_input`
    the max pool directly on the input image (before the conv) instead."""
    builder = NetworkBuilder((7, 5, 2))
    pool, strides, padding = geometry

    def max_pool(x, name):
        if pool == "global":
            h, w, c = builder.shape(x)
            return builder.reshape(builder.max_pool(x, (h, w), (1, 1), "valid", name), (c,), name + "_flat")
        return builder.max_pool(x, pool, strides, padding, name)

    x = max_pool(0, "input_pool") if pool_input else 0
    if len(builder.shape(x)) == 1:  # global pooling of the input: a dense network of its channel maxima
        x = builder.reshape(x, (1, 1, builder.shape(x)[0]), "as_map")
    h, w, c = builder.shape(x)
    x = builder.conv2d(x, rng.normal(size=(3, 3, c, 3)) / 2, rng.normal(size=3) * 0.2, (1, 1),
                       same_pads(h, 3, 1) + same_pads(w, 3, 1), "conv")
    x = builder.activation(x, activation, "act")
    if not pool_input:
        x = max_pool(x, "pool")
    x = builder.reshape(x, (-1,), "flatten")
    x = builder.dense(x, rng.normal(size=(builder.shape(x)[0], 6)) / 2, rng.normal(size=6) * 0.2, "dense")
    x = builder.activation(x, activation, "dense_act")
    return builder.build(builder.dense(x, rng.normal(size=(6, 3)), rng.normal(size=3) * 0.2, "logits"))


# Every geometry with every activation; CI runs each geometry once, with the activations in rotation.
SOUNDNESS_CASES = [pytest.param(g, a, marks=() if (i + j) % 3 == 0 else pytest.mark.slow)
                   for i, g in enumerate(GEOMETRIES) for j, a in enumerate(["relu", "sigmoid", "tanh"])]


@pytest.mark.parametrize("geometry, activation", SOUNDNESS_CASES)
def test_sampled_outputs_stay_within_bounds_of_every_method(geometry, activation):
    rng = np.random.default_rng(abs(hash((str(geometry), activation))) % 2 ** 31)
    for pool_input in (False, True):
        network = _pooled_network(rng, geometry, activation, pool_input)
        x = rng.random((2,) + network.input_shape)
        for norm, eps, clip in (("linf", 0.08, (0.0, 1.0)), ("linf", 0.08, None), ("l2", 0.4, None)):
            samples = [perturbation_samples(x[i], eps, norm, clip, 1500, rng) for i in range(2)]
            outputs = [forward(network, s) for s in samples]
            for method in certify.METHODS:
                lower, upper = certify.bounds(network, x, eps, norm=norm, method=method, clip=clip)
                assert np.all(lower <= upper)
                for i in range(2):
                    assert np.all(outputs[i] >= lower[i]), (method, norm, clip)
                    assert np.all(outputs[i] <= upper[i]), (method, norm, clip)


def _deep_pooled_network(rng, geometry):
    """conv -> relu -> max pool -> conv -> relu -> max pool -> dense: rows of the second conv travel back
    through a max pool as patches."""
    pool, strides, padding = geometry
    builder = NetworkBuilder((11, 9, 2))
    x = 0
    for i, filters in enumerate((3, 4)):
        h, w, c = builder.shape(x)
        x = builder.conv2d(x, rng.normal(size=(3, 3, c, filters)) / 2, rng.normal(size=filters) * 0.2, (1, 1),
                           same_pads(h, 3, 1) + same_pads(w, 3, 1), f"conv{i}")
        x = builder.max_pool(builder.relu(x, f"relu{i}"), pool, strides, padding, f"pool{i}")
    x = builder.reshape(x, (-1,), "flatten")
    return builder.build(builder.dense(x, rng.normal(size=(builder.shape(x)[0], 3)), rng.normal(size=3), "logits"))


@pytest.mark.parametrize("geometry", GEOMETRIES[:-1])
def test_crown_on_pooled_networks_equals_the_plain_pass(geometry):
    # The full-CROWN options (sparse CROWN, patches through max pooling, early stop) give the plain pass's
    # bounds up to rounding.
    rng = np.random.default_rng(3)
    network = _deep_pooled_network(rng, geometry)
    x = rng.random((3,) + network.input_shape)
    inputs = certify.perturbation.input_set("linf", tf.constant(x), tf.constant(np.full(3, 0.05)), (0.0, 1.0))
    spec = certify.spec.logit_spec(3, 3, tf.float64)
    fast = certify.verifier.Verifier(network).spec_lower_bounds(inputs, spec, "crown").numpy()
    plain = certify.verifier.Verifier(network, skip_stable=False, patch_rows=False, early_stop=False)
    np.testing.assert_allclose(fast, plain.spec_lower_bounds(inputs, spec, "crown").numpy(), rtol=1e-9, atol=1e-9)


# --- certified training through max pooling ----------------------------------------------------------


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_certified_training_bounds_have_gradients_through_max_pooling(method):
    from swtf.train import certified

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="tanh"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 8)
    with tf.GradientTape() as tape:
        lower = certified.live_margin_bounds(model, x, y, 0.05, method)
        total = tf.reduce_sum(lower)
    reference = certify.margin_bounds(model, x, y, 0.05, method=method)
    reference[np.arange(8), y] = 0.0
    # float32 bounds with float32's outward margins (1e-4 of each term, also on every tanh intercept): below
    # the float64 bounds and close to them.
    scale = np.abs(reference).max()
    assert np.all(lower.numpy() <= reference + 1e-6 * scale)
    np.testing.assert_allclose(lower.numpy(), reference, atol=5e-3 * scale)
    for variable, gradient in zip(model.trainable_variables, tape.gradient(total, model.trainable_variables)):
        assert gradient is not None and np.all(np.isfinite(gradient)), variable.path
