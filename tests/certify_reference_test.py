"""swtf's IBP, CROWN and CROWN-IBP bounds against auto_LiRPA's, stored by reference/make_auto_lirpa_bounds.py.

auto_LiRPA (PyTorch) cannot run here, so its bounds for small random networks (dense, strided and
'same'-padded convolutions, residual additions, batch norm and average pooling; L-inf boxes clipped to
[0, 1] and L2 balls) were computed once and stored with the networks' weights and points (auto_LiRPA with
CROWN bounds for every intermediate neuron, as swtf computes; see the generator for its default, which
differs). Each network is rebuilt in Keras from them; its clean logits must match the PyTorch twin's (the
two compute the same function), and every bound must equal auto_LiRPA's within 1e-6 plus 1e-8 of its
magnitude (swtf's outward rounding is smaller).
"""

import json
import os

import keras
import numpy as np
import pytest

from swtf import certify

REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "auto_lirpa_bounds.npz")


def _load():
    arrays = np.load(REFERENCE)
    return arrays, json.loads(str(arrays["cases"]))


def keras_layer(layer):
    """The Keras layer of one stored layer description (shared with the nonlinear reference test)."""
    kind = layer[0]
    if kind == "conv":
        return keras.layers.Conv2D(layer[1], layer[2], strides=layer[3], padding=layer[4])
    if kind == "dense":
        return keras.layers.Dense(layer[1])
    if kind == "bn":
        return keras.layers.BatchNormalization(epsilon=1e-3)
    if kind == "avgpool":
        return keras.layers.AveragePooling2D(layer[1])
    if kind == "maxpool":
        return keras.layers.MaxPooling2D(layer[1])
    if kind in ("sigmoid", "tanh"):
        return keras.layers.Activation(kind)
    return {"relu": keras.layers.ReLU, "flatten": keras.layers.Flatten}[kind]()


def _keras_model(arrays, case):
    """A functional model: ["skip_conv", k] adds a 'same' k x k convolution of its input to that input."""
    inputs = x = keras.Input(tuple(case["input_shape"]))
    for layer in case["layers"]:
        if layer[0] == "skip_conv":
            x = keras.layers.Add()([x, keras.layers.Conv2D(x.shape[-1], layer[1], padding="same")(x)])
        else:
            x = keras_layer(layer)(x)
    model = keras.Model(inputs, x)
    model.set_weights([arrays[f"{case['key']}/w{i}"] for i in range(case["weights"])])
    return model


def _cases():
    _, cases = _load()
    return [pytest.param(case, id=case["key"]) for case in cases]


@pytest.mark.parametrize("case", _cases())
def test_bounds_equal_auto_lirpa(case):
    arrays, _ = _load()
    key = case["key"]
    assert len(case["entries"]) >= 6
    model = _keras_model(arrays, case)
    x = arrays[f"{key}/x"]
    np.testing.assert_allclose(model(x.astype(np.float32)).numpy(), arrays[f"{key}/logits"], atol=1e-5)
    for norm, eps, method in case["entries"]:
        lower, upper = certify.bounds(model, x, eps, norm=norm, method=method)
        ref_lower = arrays[f"{key}/{norm}/{eps}/{method}/lower"]
        ref_upper = arrays[f"{key}/{norm}/{eps}/{method}/upper"]
        np.testing.assert_allclose(lower, ref_lower, atol=1e-6, rtol=1e-8, err_msg=f"{key} {norm} {eps} {method} lower")
        np.testing.assert_allclose(upper, ref_upper, atol=1e-6, rtol=1e-8, err_msg=f"{key} {norm} {eps} {method} upper")


@pytest.mark.parametrize("key", ["convex_like_0", "residual_1"])
def test_savedmodel_bounds_equal_auto_lirpa(tmp_path, key):
    """The same through the deployed artifact: the model exported as a SavedModel and read from its graph."""
    arrays, cases = _load()
    case = next(c for c in cases if c["key"] == key)
    path = str(tmp_path / key)
    _keras_model(arrays, case).export(path, verbose=False)
    x = arrays[f"{key}/x"]
    for norm, eps, method in case["entries"]:
        lower, upper = certify.bounds(path, x, eps, norm=norm, method=method)
        np.testing.assert_allclose(lower, arrays[f"{key}/{norm}/{eps}/{method}/lower"], atol=1e-6, rtol=1e-8)
        np.testing.assert_allclose(upper, arrays[f"{key}/{norm}/{eps}/{method}/upper"], atol=1e-6, rtol=1e-8)
