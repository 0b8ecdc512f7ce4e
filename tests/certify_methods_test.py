"""Tests of the bound methods: exact hand-computed cases, an independent NumPy CROWN/IBP, sampled
soundness on every supported op, and the tightness ordering IBP >= CROWN >= alpha-CROWN."""

import dataclasses

import keras
import numpy as np
import pytest

from swtf import certify
from swtf.certify.network import Network, Node, forward
from swtf.certify.sampling import perturbation_samples
from swtf.errors import SwtfError

METHODS = certify.METHODS


# ---------------------------------------------------------------------------------------------------
# A hand-computed two-neuron network.
#   z1 = x1 + x2 + 0.5, z2 = x1 - x2 - 0.5, y = relu(z1) - relu(z2), x in [-1, 1]^2.
#   Pre-activations: z1 in [-1.5, 2.5] (lower slope 1), z2 in [-2.5, 1.5] (lower slope 0).
#   Chords: relu(z1) <= 0.625 z1 + 0.9375, relu(z2) <= 0.375 z2 + 0.9375.
#   IBP:   y in [0 - 1.5, 2.5 - 0] = [-1.5, 2.5].
#   CROWN: y >= z1 - 0.375 z2 - 0.9375 = 0.625 x1 + 1.375 x2 - 0.25 >= -2.25,
#          y <= 0.625 z1 + 0.9375 = 0.625 (x1 + x2) + 1.25 <= 2.5.
#   alpha-CROWN (lower): y >= a z1 - 0.375 z2 - 0.9375, minimised over the box, is best at a = 0.375,
#          giving -1.3125 (and never more). The true minimum is -1 (x = (1, -1)).
# ---------------------------------------------------------------------------------------------------
def _hand_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)])
    model.layers[0].set_weights([np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([0.5, -0.5])])
    model.layers[1].set_weights([np.array([[1.0], [-1.0]]), np.zeros(1)])
    return model


@pytest.mark.parametrize("method, lower, upper", [
    ("ibp", -1.5, 2.5), ("crown", -2.25, 2.5), ("crown-ibp", -2.25, 2.5)])
def test_hand_computed_bounds(method, lower, upper):
    lo, up = certify.bounds(_hand_model(), np.zeros((1, 2)), 1.0, method=method, clip=None)
    np.testing.assert_allclose([lo[0, 0], up[0, 0]], [lower, upper], atol=1e-8)


def test_hand_computed_alpha_crown_reaches_optimal_slope_and_no_further():
    lo, up = certify.bounds(_hand_model(), np.zeros((1, 2)), 1.0, method="alpha-crown", clip=None)
    assert -1.3125 - 0.05 < lo[0, 0] <= -1.3125 + 1e-8  # far above CROWN's -2.25, never past the optimum
    np.testing.assert_allclose(up[0, 0], 2.5, atol=1e-8)


def test_adaptive_slope_tie_takes_zero_as_auto_lirpa_and_deeppoly_do():
    """y = relu(x), x in [-1, 1]: u = -l is a tie, where auto_LiRPA (upper slope u / (u - l) > 0.5) and DeepPoly
    take lower slope 0, so y >= 0; slope 1 would give y >= x >= -1. Upper: the chord 0.5 x + 0.5 <= 1."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="relu"), keras.layers.Dense(1)])
    model.layers[0].set_weights([np.ones((1, 1)), np.zeros(1)])
    model.layers[1].set_weights([np.ones((1, 1)), np.zeros(1)])
    for method in ("crown", "crown-ibp"):
        lo, up = certify.bounds(model, np.zeros((1, 1)), 1.0, method=method, clip=None)
        np.testing.assert_allclose([lo[0, 0], up[0, 0]], [0.0, 1.0], atol=1e-8)


def test_hand_computed_l2_ibp_uses_the_dual_norm_in_the_first_layer():
    # z1 in 0.5 +- sqrt(2), z2 in -0.5 +- sqrt(2): y in [-(sqrt(2) - 0.5), 0.5 + sqrt(2)].
    lo, up = certify.bounds(_hand_model(), np.zeros((1, 2)), 1.0, norm="l2", method="ibp")
    np.testing.assert_allclose([lo[0, 0], up[0, 0]], [0.5 - np.sqrt(2), 0.5 + np.sqrt(2)], atol=1e-8)


def test_box_clip_intersects_the_linf_ball():
    # x0 = (0.9, 0.9), eps 0.5, clip (0, 1): box [0.4, 1]^2; y <= 0.625 (x1 + x2) + 1.25 is not the bound
    # any more (z2 in [-1.1, 0.1] stays unstable); IBP: z1 in [1.3, 2.5] active, so y <= 2.5 and
    # y >= 1.3 - 0.1 = 1.2.
    lo, up = certify.bounds(_hand_model(), np.full((1, 2), 0.9), 0.5, method="ibp")
    np.testing.assert_allclose([lo[0, 0], up[0, 0]], [1.2, 2.5], atol=1e-8)


# ---------------------------------------------------------------------------------------------------
# An independent NumPy CROWN on the network flattened to dense matrices.
# ---------------------------------------------------------------------------------------------------
def _single_op(node, shape_in, **params):
    """A one-op Network applying `node` (optionally with replaced params) to an input of `shape_in`."""
    op = dataclasses.replace(node, inputs=(0,), params={**node.params, **params})
    return Network([Node("input", (), {}, shape_in, "in"), op])


def _dense_chain(network):
    """[(W, b)] for a chain network, with a ReLU after every matrix but the last (W maps row vectors)."""
    layers = []
    size = int(np.prod(network.input_shape))
    matrix, bias = np.eye(size), np.zeros(size)
    for node in network.nodes[1:]:
        if node.op == "relu":
            layers.append((matrix, bias))
            size = matrix.shape[1]
            matrix, bias = np.eye(size), np.zeros(size)
            continue
        shape_in = network.nodes[node.inputs[0]].shape
        single = _single_op(node, shape_in)
        basis = np.eye(int(np.prod(shape_in))).reshape((-1,) + shape_in)
        node_bias = forward(single, np.zeros((1,) + shape_in)).reshape(-1)
        node_matrix = forward(single, basis).reshape(len(basis), -1) - node_bias
        matrix, bias = matrix @ node_matrix, bias @ node_matrix + node_bias
    layers.append((matrix, bias))
    return layers


def _numpy_crown(layers, x0, eps, clip):
    """Full CROWN with adaptive lower slopes (u > -l -> 1), for an L-inf box; returns (lower, upper)."""
    xl, xu = x0 - eps, x0 + eps
    if clip is not None:
        xl, xu = np.maximum(xl, clip[0]), np.minimum(xu, clip[1])
    pre = []

    def lower_bound(spec, k):
        a, const = spec, np.zeros(len(spec))
        for j in range(k, -1, -1):
            w, b = layers[j]
            const, a = const + a @ b, a @ w.T
            if j == 0:
                break
            l, u = pre[j - 1]
            unstable, active = (l < 0) & (u > 0), l >= 0
            slope_u = np.where(active, 1.0, np.where(unstable, u / np.where(unstable, u - l, 1), 0.0))
            slope_l = np.where(active | (unstable & (u > -l)), 1.0, 0.0)
            a_pos, a_neg = np.maximum(a, 0), np.minimum(a, 0)
            const, a = const + a_neg @ np.where(unstable, -l * slope_u, 0.0), a_pos * slope_l + a_neg * slope_u
        return a @ ((xl + xu) / 2) - np.abs(a) @ ((xu - xl) / 2) + const

    for k in range(len(layers)):
        eye = np.eye(layers[k][0].shape[1])
        pre.append((lower_bound(eye, k), -lower_bound(-eye, k)))
    return pre[-1]


def _numpy_ibp(network, x0, eps, clip):
    """Node-by-node interval arithmetic in NumPy: centre through the layer, radius through |layer|."""
    lower, upper = x0 - eps, x0 + eps
    if clip is not None:
        lower, upper = np.maximum(lower, clip[0]), np.minimum(upper, clip[1])
    boxes = [(lower[None], upper[None])]
    for node in network.nodes[1:]:
        parents = [boxes[i] for i in node.inputs]
        if node.op == "relu":
            boxes.append(tuple(np.maximum(v, 0) for v in parents[0]))
            continue
        if node.op == "add":
            c = sum((l + u) / 2 for l, u in parents)
            r = sum((u - l) / 2 for l, u in parents)
        else:
            (l, u), = parents
            shape_in = network.nodes[node.inputs[0]].shape
            abs_params = {k: np.abs(v) if k in ("kernel", "scale") else np.zeros_like(v)
                          for k, v in node.params.items() if k in ("kernel", "scale", "bias", "shift")}
            c = forward(_single_op(node, shape_in), (l + u) / 2)
            r = forward(_single_op(node, shape_in, **abs_params), (u - l) / 2)
        boxes.append((c - r, c + r))
    return boxes[-1]


def _dense_model(seed, widths=(8, 7), inputs=6, classes=4):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))] + [keras.layers.Dense(w, activation="relu", bias_initializer="random_normal")
                                         for w in widths] + [keras.layers.Dense(classes)]
    return keras.Sequential(layers)


def _strided_conv_model(seed, size):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((size, size, 2)),
        keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", bias_initializer="random_normal"),
        keras.layers.Conv2D(4, 4, strides=2, padding="same", bias_initializer="random_normal"),
        keras.layers.ReLU(),
        keras.layers.AveragePooling2D(2, strides=1, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.Dense(3)])


@pytest.mark.parametrize("model_fn", [lambda: _dense_model(0), lambda: _dense_model(1, (5, 6, 4)),
                                      lambda: _strided_conv_model(2, 7), lambda: _strided_conv_model(3, 6)])
def test_crown_matches_independent_numpy_crown(model_fn):
    model = model_fn()
    network = certify.as_network(model)
    rng = np.random.default_rng(0)
    x = rng.random((3,) + network.input_shape)
    lo, up = certify.bounds(model, x, 0.05, method="crown")
    layers = _dense_chain(network)
    for i in range(len(x)):
        ref_lo, ref_up = _numpy_crown(layers, x[i].reshape(-1), 0.05, (0.0, 1.0))
        np.testing.assert_allclose(lo[i], ref_lo, atol=1e-8, rtol=0)
        np.testing.assert_allclose(up[i], ref_up, atol=1e-8, rtol=0)
        assert np.all(lo[i] <= ref_lo) and np.all(up[i] >= ref_up)  # rounded outward, never inward


@pytest.mark.parametrize("model_fn", [lambda: _dense_model(0), lambda: _strided_conv_model(3, 7)])
def test_ibp_matches_independent_numpy_ibp(model_fn):
    model = model_fn()
    network = certify.as_network(model)
    x = np.random.default_rng(1).random((2,) + network.input_shape)
    lo, up = certify.bounds(model, x, 0.1, method="ibp")
    for i in range(len(x)):
        ref_lo, ref_up = _numpy_ibp(network, x[i], 0.1, (0.0, 1.0))
        np.testing.assert_allclose(lo[i], ref_lo[0], atol=1e-8, rtol=0)
        np.testing.assert_allclose(up[i], ref_up[0], atol=1e-8, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Sampled soundness on every supported op, every method and norm.
# ---------------------------------------------------------------------------------------------------
def _randomise_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.normal(1, 0.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


def _bn_avgpool_model():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Normalization(mean=[0.4], variance=[0.09]),
        keras.layers.Conv2D(4, 4, strides=2, padding="same", bias_initializer="random_normal"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.AveragePooling2D(3, strides=2, padding="same"),
        keras.layers.Dropout(0.5),
        keras.layers.Flatten(),
        keras.layers.Dense(3)])
    return _randomise_batch_norm(model, np.random.default_rng(4))


def _residual_model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5, 5, 1))
    a = keras.layers.Conv2D(3, 3, padding="same", activation="relu", bias_initializer="random_normal")(inputs)
    b = keras.layers.Conv2D(3, 3, padding="same", bias_initializer="random_normal")(a)
    b = keras.layers.Activation("relu")(b)
    c = keras.layers.Add()([a, b])
    c = keras.layers.AveragePooling2D(2)(c)
    c = keras.layers.Rescaling(2.0, offset=-0.1)(c)
    c = keras.layers.Flatten()(c)
    outputs = keras.layers.Dense(4, activation="softmax")(c)
    return keras.Model(inputs, outputs)


def _zoo_model():
    from swtf import models
    return models.build("shallow_cnn", (8, 8, 1), 4, normalization=([0.5], [0.25]), seed=6, filters=(4,),
                        dense=(6,))


SOUNDNESS_MODELS = {
    "dense": lambda: _dense_model(7),
    "conv_odd": lambda: _strided_conv_model(8, 7),
    "conv_even": lambda: _strided_conv_model(9, 8),
    "bn_avgpool": _bn_avgpool_model,
    "residual": _residual_model,
    "zoo": _zoo_model,
}
EPS = {"linf": 0.04, "l2": 0.3}


@pytest.fixture(scope="module")
def soundness_models():
    return {name: fn() for name, fn in SOUNDNESS_MODELS.items()}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(SOUNDNESS_MODELS))
def test_sampled_points_lie_within_bounds(soundness_models, name, norm):
    model = soundness_models[name]
    network = certify.as_network(model)
    rng = np.random.default_rng(10)
    x = rng.random((2,) + network.input_shape)
    x.reshape(2, -1)[1, :3] = 0.0  # a point on the domain boundary, so clipping matters
    y = np.array([0, 1])
    eps = np.array([EPS[norm], EPS[norm] / 2])
    for method in METHODS:
        lo, up = certify.bounds(model, x, eps, norm=norm, method=method)
        margins = certify.margin_bounds(model, x, y, eps, norm=norm, method=method)
        for i in range(len(x)):
            samples = perturbation_samples(x[i], eps[i], norm, (0.0, 1.0), 1000, rng)
            logits = forward(network, samples)
            assert np.all(logits >= lo[i]) and np.all(logits <= up[i]), (method, "logits")
            sampled_margins = logits[:, y[i]][:, None] - logits
            sampled_margins[:, y[i]] = np.inf
            assert np.all(sampled_margins >= margins[i]), (method, "margins")
            assert np.all(margins[i] >= lo[i, y[i]] - up[i] - 1e-9), (method, "margin no looser than logits")


def test_keras_model_outputs_lie_within_bounds(soundness_models):
    # The Keras float32 forward (not the representation) also stays inside, up to float32 rounding.
    model = soundness_models["residual"]
    rng = np.random.default_rng(11)
    x = rng.random((1, 5, 5, 1))
    lo, up = certify.bounds(model, x, 0.03)
    samples = perturbation_samples(x[0], 0.03, "linf", (0.0, 1.0), 500, rng).astype("float32")
    pre_softmax = keras.Model(model.inputs[0], model.layers[-1].input)(samples).numpy()
    logits = pre_softmax @ model.layers[-1].kernel.numpy() + model.layers[-1].bias.numpy()
    assert np.all(logits >= lo[0] - 1e-5) and np.all(logits <= up[0] + 1e-5)


# ---------------------------------------------------------------------------------------------------
# Tightness ordering.
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.5)])
def test_margin_tightness_ordering_ibp_crown_alpha(norm, eps):
    model = _dense_model(12, widths=(16, 16, 16), inputs=10, classes=4)
    x = np.random.default_rng(12).random((4, 10))
    y = np.argmax(model(x).numpy(), axis=1)
    ibp, crown, alpha = (certify.margin_bounds(model, x, y, eps, norm=norm, method=m)
                         for m in ("ibp", "crown", "alpha-crown"))
    off = ~np.eye(4, dtype=bool)[y]
    assert np.all(crown[off] >= ibp[off])
    assert np.all(alpha[off] >= crown[off])
    assert np.any(alpha[off] > crown[off] + 1e-6)  # the optimised slopes really move


def test_alpha_crown_never_looser_on_a_conv_net(soundness_models):
    model = soundness_models["conv_odd"]
    x = np.random.default_rng(13).random((2, 7, 7, 2))
    crown_lo, crown_up = certify.bounds(model, x, 0.05, method="crown")
    alpha_lo, alpha_up = certify.bounds(model, x, 0.05, method="alpha-crown")
    assert np.all(alpha_lo >= crown_lo) and np.all(alpha_up <= crown_up)


def test_zero_radius_bounds_are_the_exact_logits(soundness_models):
    model = soundness_models["bn_avgpool"]
    x = np.random.default_rng(14).random((3, 8, 8, 1))
    exact = forward(certify.as_network(model), x)
    for method in METHODS:
        lo, up = certify.bounds(model, x, 0.0, method=method)
        np.testing.assert_allclose(lo, exact, atol=1e-8)
        np.testing.assert_allclose(up, exact, atol=1e-8)
        assert np.all(lo <= exact) and np.all(up >= exact)


def test_float32_mode_is_close_to_float64():
    model = _dense_model(15)
    x = np.random.default_rng(15).random((2, 6))
    lo64, up64 = certify.bounds(model, x, 0.05)
    lo32, up32 = certify.bounds(model, x, 0.05, dtype="float32")
    np.testing.assert_allclose(lo32, lo64, atol=1e-3)
    assert np.all(lo32 <= lo64 + 1e-6) and np.all(up32 >= up64 - 1e-6)


# ---------------------------------------------------------------------------------------------------
# API validation.
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"x": np.zeros((2, 5))}, "Expected input shape (None, 6), received (2, 5)"),
    ({"eps": -0.1}, "eps must be finite and >= 0"),
    ({"eps": np.nan}, "eps must be finite and >= 0"),
    ({"eps": [0.1, 0.2, 0.3]}, "one radius per point"),
    ({"norm": "l1"}, "norm must be one of"),
    ({"method": "deeppoly"}, "method must be one of"),
    ({"x": np.full((2, 6), 2.0)}, "outside clip"),
])
def test_bad_arguments_raise_one_line_errors(kwargs, message):
    args = {"x": np.zeros((2, 6)), "eps": 0.1, "norm": "linf", "method": "crown"}
    args.update(kwargs)
    model = _dense_model(16)
    with pytest.raises(SwtfError) as err:
        certify.bounds(model, args.pop("x"), args.pop("eps"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_keras_model_cache_follows_weight_changes():
    model = _dense_model(17)
    x = np.random.default_rng(17).random((1, 6))
    first = certify.as_network(model)
    assert certify.as_network(model) is first
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)
    lo, _ = certify.bounds(model, x, 0.0)
    np.testing.assert_allclose(lo, model(x).numpy(), atol=1e-5)
    assert certify.as_network(model) is not first
