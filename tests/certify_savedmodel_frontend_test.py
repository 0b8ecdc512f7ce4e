"""Tests of the SavedModel front-end: Keras `model.export`, `tf.saved_model.save` and a hand-written
`serving_default` signature (images -> logits) translate to a Network computing the same outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from swtf import certify
from swtf.certify.network import forward
from swtf.certify.savedmodel_frontend import from_saved_model
from swtf.errors import SwtfError


def _conv_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((7, 7, 2)),
        keras.layers.Normalization(mean=[0.1, 0.2], variance=[0.5, 2.0]),
        keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", bias_initializer="random_normal"),
        keras.layers.BatchNormalization(),
        keras.layers.AveragePooling2D(2, padding="same"),
        keras.layers.Rescaling(0.5, offset=0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(6, activation="relu", bias_initializer="random_normal"),
        keras.layers.Dense(4, activation="softmax")])
    bn = model.layers[2]
    rng = np.random.default_rng(0)
    bn.set_weights([rng.normal(1, 0.3, (3,)), rng.normal(0, 0.3, (3,)), rng.normal(0, 0.3, (3,)),
                    rng.uniform(0.5, 2, (3,))])
    return model


def _residual_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 5, 1))
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(2, 1)(a)
    merged = keras.layers.Conv2D(1, 1)(keras.layers.Add()([a, b]))
    c = keras.layers.Subtract()([merged, inputs])
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.ReLU()(c)))
    return keras.Model(inputs, outputs)


def _logits_without_softmax(model, x):
    """The model's pre-softmax logits, from its own layers."""
    last = model.layers[-1]
    features = keras.Model(model.inputs[0], last.input)(x).numpy()
    return features @ last.kernel.numpy() + last.bias.numpy()


@pytest.mark.parametrize("save", ["export", "saved_model_save"])
def test_keras_savedmodel_forward_matches_keras(tmp_path, save):
    model = _conv_model()
    path = str(tmp_path / "model")
    if save == "export":
        model.export(path, verbose=False)
    else:
        tf.saved_model.save(model, path)
    network = from_saved_model(path)
    x = np.random.default_rng(2).random((5, 7, 7, 2)).astype("float32")
    assert network.stripped_softmax
    np.testing.assert_allclose(forward(network, x), _logits_without_softmax(model, x), atol=1e-5)


def test_residual_functional_savedmodel_matches_keras(tmp_path):
    model = _residual_model()
    path = str(tmp_path / "model")
    model.export(path, verbose=False)
    network = from_saved_model(path)
    assert "add" in [n.op for n in network.nodes]
    x = np.random.default_rng(3).random((4, 5, 5, 1)).astype("float32")
    np.testing.assert_allclose(forward(network, x), model(x).numpy(), atol=1e-5)


class _Exported(tf.Module):
    """The shape our exporter writes: signature serving_default, input `images`, outputs incl. `logits`."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(4)
        self.w1 = tf.Variable(rng.normal(size=(12, 5)).astype("float32"))
        self.w2 = tf.Variable(rng.normal(size=(5, 3)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((None, 2, 3, 2), tf.float32, name="images")])
    def serve(self, images):
        hidden = tf.nn.relu(tf.matmul(tf.reshape(images, (-1, 12)) - 0.5, self.w1))
        logits = tf.matmul(hidden, tf.transpose(self.w2), transpose_b=True) / 2.0
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


def test_serving_default_logits_output_is_used(tmp_path):
    module = _Exported()
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    network = from_saved_model(path)
    x = np.random.default_rng(5).random((3, 2, 3, 2)).astype("float32")
    np.testing.assert_allclose(forward(network, x), module.serve(x)["logits"].numpy(), atol=1e-5)
    assert not network.stripped_softmax


def test_bounds_accept_a_savedmodel_path_and_agree_with_keras(tmp_path):
    model = _conv_model()
    path = tmp_path / "model"
    model.export(str(path), verbose=False)
    x = np.random.default_rng(6).random((2, 7, 7, 2))
    from_path = certify.bounds(path, x, 0.02)
    from_keras = certify.bounds(model, x, 0.02)
    np.testing.assert_allclose(from_path, from_keras, atol=1e-6)


@pytest.mark.parametrize("layer, op", [(keras.layers.Activation("softplus"), "Softplus"),
                                       (keras.layers.LeakyReLU(), "LeakyRelu")])
def test_unsupported_ops_are_refused_by_name(tmp_path, layer, op):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, padding="same"), layer,
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    path = str(tmp_path / "model")
    model.export(path, verbose=False)
    with pytest.raises(SwtfError, match=f"SavedModel op '{op}'"):
        from_saved_model(path)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(SwtfError, match="no SavedModel"):
        certify.bounds(str(tmp_path / "absent"), np.zeros((1, 2)), 0.1)
