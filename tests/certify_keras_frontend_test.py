"""Tests of the Keras front-end: the representation computes what the Keras model computes, and every
layer it cannot translate exactly is refused with a one-line message naming it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from swtf import models
from swtf.certify import from_keras
from swtf.certify.network import forward, same_pads
from swtf.errors import SwtfError


def _seq(input_shape, *layers):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(input_shape), *layers])


def _residual_three_way():
    inputs = keras.Input((4, 4, 2))
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(2, 1)(a)
    total = keras.layers.Add()([inputs, a, b])
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(total)))


def _nested():
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu")])
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))


def _batch_norm(center, scale):
    model = _seq((5, 5, 3), keras.layers.BatchNormalization(center=center, scale=scale, epsilon=0.01),
                 keras.layers.Flatten())
    layer = model.layers[0]
    rng = np.random.default_rng(1)
    layer.set_weights([rng.uniform(0.2, 2, w.shape) if i == len(layer.weights) - 1 else rng.normal(size=w.shape)
                       for i, w in enumerate(layer.get_weights())])
    return model


SUPPORTED = {
    "dense_relu": lambda: _seq((5,), keras.layers.Dense(4, activation="relu", bias_initializer="ones")),
    "dense_no_bias": lambda: _seq((5,), keras.layers.Dense(4, use_bias=False)),
    "dense_on_last_axis": lambda: _seq((3, 3, 2), keras.layers.Dense(4, bias_initializer="ones"),
                                       keras.layers.Flatten()),
    "conv_valid": lambda: _seq((6, 5, 2), keras.layers.Conv2D(3, (3, 2), bias_initializer="ones"),
                               keras.layers.Flatten()),
    "conv_same_stride2_odd": lambda: _seq((7, 7, 2), keras.layers.Conv2D(3, 4, strides=2, padding="same"),
                                          keras.layers.Flatten()),
    "conv_same_stride2_even": lambda: _seq((8, 8, 1), keras.layers.Conv2D(3, 3, strides=2, padding="same",
                                                                          activation="relu"),
                                           keras.layers.Flatten()),
    "conv_same_stride3_no_bias": lambda: _seq((7, 8, 1), keras.layers.Conv2D(2, 2, strides=(3, 2), padding="same",
                                                                             use_bias=False),
                                              keras.layers.Flatten()),
    "relu_and_activations": lambda: _seq((5,), keras.layers.Dense(4), keras.layers.ReLU(),
                                         keras.layers.Activation("linear"), keras.layers.Dense(4),
                                         keras.layers.Activation("relu")),
    "dropouts_and_noise": lambda: _seq((4, 4, 2), keras.layers.SpatialDropout2D(0.3), keras.layers.Dropout(0.5),
                                       keras.layers.GaussianNoise(1.0), keras.layers.Flatten()),
    "reshape": lambda: _seq((12,), keras.layers.Reshape((2, 3, 2)), keras.layers.Conv2D(2, 2),
                            keras.layers.Flatten()),
    "batch_norm": lambda: _batch_norm(True, True),
    "batch_norm_no_center_scale": lambda: _batch_norm(False, False),
    "normalization": lambda: _seq((3, 3, 2), keras.layers.Normalization(mean=[0.3, -1.0], variance=[0.04, 2.0]),
                                  keras.layers.Flatten()),
    "normalization_invert": lambda: _seq((3, 3, 2), keras.layers.Normalization(mean=[0.3, -1.0],
                                                                               variance=[0.04, 2.0], invert=True),
                                         keras.layers.Flatten()),
    "rescaling": lambda: _seq((3, 3, 2), keras.layers.Rescaling(1 / 255.0, offset=-0.5), keras.layers.Flatten()),
    "rescaling_per_channel": lambda: _seq((3, 3, 2), keras.layers.Rescaling([2.0, -3.0], offset=[0.5, 1.0]),
                                          keras.layers.Flatten()),
    "avg_pool_valid": lambda: _seq((7, 6, 2), keras.layers.AveragePooling2D((3, 2), strides=2),
                                   keras.layers.Flatten()),
    "avg_pool_same_odd": lambda: _seq((7, 7, 2), keras.layers.AveragePooling2D(2, padding="same"),
                                      keras.layers.Flatten()),
    "avg_pool_same_overlapping": lambda: _seq((6, 5, 1), keras.layers.AveragePooling2D(3, strides=2, padding="same"),
                                              keras.layers.Flatten()),
    "residual_add": _residual_three_way,
    "nested_model": _nested,
    "zoo_shallow_cnn": lambda: models.build("shallow_cnn", (9, 9, 3), 5, normalization=([0.4] * 3, [0.2] * 3),
                                            seed=0, filters=(4, 6), dense=(7,)),
    "zoo_snn": lambda: models.build("snn", (8, 8, 1), 10, seed=0, width=16),
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_forward_matches_keras(name):
    model = SUPPORTED[name]()
    network = from_keras(model)
    shape = model.input_shape_ if isinstance(model, models.LayerStack) else model.input_shape[1:]
    x = np.random.default_rng(2).normal(size=(4,) + tuple(shape)).astype("float32")
    expected = model(x, training=False).numpy().reshape(4, -1)
    np.testing.assert_allclose(forward(network, x), expected, atol=1e-5, rtol=1e-5)
    assert not network.stripped_softmax


@pytest.mark.parametrize("final", [lambda: keras.layers.Dense(3, activation="softmax"),
                                   lambda: keras.layers.Softmax(), lambda: keras.layers.Activation("softmax")])
def test_final_softmax_is_stripped_and_reported(final):
    layers = [keras.layers.Dense(3)] if not isinstance(final(), keras.layers.Dense) else []
    model = _seq((4,), keras.layers.Dense(5, activation="relu"), *layers, final(), keras.layers.Dropout(0.1))
    network = from_keras(model)
    assert network.stripped_softmax
    x = np.random.default_rng(3).normal(size=(6, 4)).astype("float32")
    np.testing.assert_allclose(tf.nn.softmax(forward(network, x)).numpy(), model(x).numpy(), atol=1e-6)


class _Custom(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _nan_weights():
    model = _seq((3,), keras.layers.Dense(2))
    model.layers[0].set_weights([np.array([[np.nan, 0], [0, 0], [0, 0]]), np.zeros(2)])
    return model


REFUSED = {
    "MaxPooling1D": (lambda: _seq((4, 2), keras.layers.MaxPooling1D(), keras.layers.Flatten()), "MaxPooling1D"),
    "max_pool_channels_first": (lambda: _seq((2, 4, 4), keras.layers.MaxPooling2D(data_format="channels_first"),
                                             keras.layers.Flatten()), "channels_first"),
    "LSTM": (lambda: _seq((3, 2), keras.layers.LSTM(2)), "LSTM"),
    "dilation": (lambda: _seq((6, 6, 1), keras.layers.Conv2D(2, 3, dilation_rate=2), keras.layers.Flatten()),
                 "dilation_rate"),
    "groups": (lambda: _seq((5, 5, 2), keras.layers.Conv2D(2, 3, groups=2), keras.layers.Flatten()), "groups"),
    "channels_first": (lambda: _seq((2, 5, 5), keras.layers.Conv2D(2, 3, data_format="channels_first"),
                                    keras.layers.Flatten()), "channels_first"),
    "inner_softmax": (lambda: _seq((4,), keras.layers.Dense(3, activation="softmax"), keras.layers.Dense(2)),
                      "softmax"),
    "hard_sigmoid": (lambda: _seq((4,), keras.layers.Dense(3, activation="hard_sigmoid")), "hard_sigmoid"),
    "softplus_layer": (lambda: _seq((4,), keras.layers.Dense(3), keras.layers.Activation("softplus")), "softplus"),
    "conv_elu": (lambda: _seq((4, 4, 1), keras.layers.Conv2D(2, 3, activation="elu"), keras.layers.Flatten()),
                 "elu"),
    "leaky_relu": (lambda: _seq((4,), keras.layers.Dense(3), keras.layers.LeakyReLU()), "leaky"),
    "relu6": (lambda: _seq((4,), keras.layers.Dense(3), keras.layers.ReLU(max_value=6.0)), "max_value"),
    "leaky_relu_layer": (lambda: _seq((4,), keras.layers.ReLU(negative_slope=0.1)), "negative_slope"),
    "subclassed": (lambda: _Custom(), "subclassed"),
    "nan_weights": (_nan_weights, "NaN"),
    "spatial_output": (lambda: _seq((4, 4, 1), keras.layers.Conv2D(2, 3)), "vector of logits"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_layers_are_refused_by_name(name):
    build, reason = REFUSED[name]
    model = build()
    if isinstance(model, _Custom):
        model(np.zeros((1, 3)))
    with pytest.raises(SwtfError) as err:
        from_keras(model)
    message = str(err.value)
    assert reason in message and "\n" not in message
    if name not in ("subclassed", "spatial_output"):
        assert any(f"'{layer.name}'" in message for layer in model.layers)


@pytest.mark.parametrize("size, kernel, stride", [(7, 3, 2), (8, 3, 2), (7, 4, 2), (8, 4, 2), (5, 2, 3),
                                                  (6, 1, 2), (3, 5, 1)])
def test_same_pads_follow_tf(size, kernel, stride):
    # Cross-check against TF: a 'same' convolution equals an explicitly padded 'valid' one.
    top, bottom = same_pads(size, kernel, stride)
    x = tf.random.stateless_normal((1, size, size, 1), seed=(1, 2), dtype=tf.float64)
    k = tf.random.stateless_normal((kernel, kernel, 1, 1), seed=(3, 4), dtype=tf.float64)
    same = tf.nn.conv2d(x, k, stride, "SAME")
    explicit = tf.nn.conv2d(tf.pad(x, [[0, 0], [top, bottom], [top, bottom], [0, 0]]), k, stride, "VALID")
    np.testing.assert_allclose(same.numpy(), explicit.numpy(), atol=1e-12)
    assert bottom - top in (0, 1)
