"""Filter surgery checked against the original model with the removed channels zeroed, and by hand counts."""

import keras
import numpy as np
import pytest

from swtf import models
from swtf.errors import SwtfError
from swtf.prune import count_params, remove_filters

ZOO_CASES = [
    ("cifar_cnn", (32, 32, 3), {}),
    ("svhn_cnn", (16, 16, 3), {}),
    ("convex_cnn", (8, 8, 1), {}),
    ("shallow_cnn", (8, 8, 1), {"filters": [8, 6]}),
    ("scnn1", (8, 8, 1), {"normalization": ([0.5], [0.25])}),
    ("scnn2", (8, 8, 1), {"filters": [6, 5], "dense": [7]}),
]


def randomize(model, seed=0):
    """Random weights everywhere (biases and batch-norm statistics included, variances positive)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        values = rng.normal(0.0, 0.5, size=tuple(v.shape))
        if "variance" in v.name:
            values = rng.uniform(0.5, 2.0, size=tuple(v.shape))
        v.assign(values.astype(v.dtype))


def logits(model, x):
    return np.asarray(model(x, training=False))


def copy_of(model):
    twin = model.__class__.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    return twin


def random_removals(model, rng):
    removals = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            count = rng.integers(1, layer.filters)
            removals[layer.name] = rng.choice(layer.filters, size=count, replace=False)
    return removals


def zero_channels(model, removals, batch_norm_after=None):
    """The original with each removed filter's kernel and bias zeroed (and its batch norm output zeroed)."""
    zeroed = copy_of(model)
    batch_norm_after = batch_norm_after or {}
    for name, idx in removals.items():
        conv = zeroed.get_layer(name)
        conv.kernel.assign(conv.kernel.numpy() * (~np.isin(np.arange(conv.filters), idx)))
        conv.bias.assign(np.where(np.isin(np.arange(conv.filters), idx), 0.0, conv.bias.numpy()))
        if name in batch_norm_after:
            bn = zeroed.get_layer(batch_norm_after[name])
            for v in (bn.beta, bn.moving_mean):  # BN(0) = gamma * (0 - mean) / std + beta = 0
                v.assign(np.where(np.isin(np.arange(conv.filters), idx), 0.0, v.numpy()))
    return zeroed


@pytest.mark.parametrize("name,input_shape,hparams", ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_zoo_pruned_logits_equal_zeroed_filters(name, input_shape, hparams):
    model = models.build(name, input_shape, 10, **hparams)
    randomize(model)
    rng = np.random.default_rng(1)
    removals = random_removals(model, rng)
    x = rng.uniform(size=(4,) + input_shape).astype("float32")

    pruned = remove_filters(model, removals)

    np.testing.assert_allclose(logits(pruned, x), logits(zero_channels(model, removals), x), rtol=1e-4, atol=1e-4)
    assert isinstance(pruned, models.LayerStack) and pruned.architecture == name
    for layer_name, idx in removals.items():
        original = model.get_layer(layer_name)
        assert pruned.get_layer(layer_name).filters == original.filters - len(idx)
        assert original.kernel.shape[-1] == original.filters  # the original is untouched


def test_next_layer_channels_and_flatten_rows_follow_removed_filters():
    model = models.build("scnn2", (8, 8, 1), 10, filters=[6, 5])
    randomize(model)
    pruned = remove_filters(model, {"conv1_1": [0, 3], "conv1_2": [4, 1]})
    keep1, keep2 = np.array([1, 2, 4, 5]), np.array([0, 2, 3])
    conv2_before, conv2_after = model.get_layer("conv1_2").kernel.numpy(), pruned.get_layer("conv1_2").kernel.numpy()
    np.testing.assert_array_equal(conv2_after, conv2_before[:, :, keep1][..., keep2])
    # after 2x2 pooling the map is 4x4x5; Dense rows are grouped as (h, w, c) -> keep c in keep2
    dense_before = model.get_layer("logits").kernel.numpy().reshape(4, 4, 5, 10)
    np.testing.assert_array_equal(pruned.get_layer("logits").kernel.numpy(),
                                  dense_before[:, :, keep2, :].reshape(4 * 4 * 3, 10))
    assert pruned.hparams["filters"] == [4, 3]


def test_parameter_count_matches_hand_arithmetic():
    model = models.build("scnn2", (8, 8, 1), 10, filters=[32, 64])
    pruned = remove_filters(model, {"conv1_1": range(8), "conv1_2": range(16)})
    conv1 = 3 * 3 * 1 * 24 + 24          # 24 filters over 1 input channel: 240
    conv2 = 3 * 3 * 24 * 48 + 48         # 48 filters over 24 channels: 10,416
    logits_ = (4 * 4 * 48) * 10 + 10     # 8x8 pooled to 4x4, 48 maps flattened: 7,690
    assert count_params(pruned) == conv1 + conv2 + logits_ == 18346


def bn_functional_model():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Activation("relu", name="relu_b")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs, name="bn_net")
    randomize(model, seed=3)
    for bn in ("bn_a", "bn_b"):  # positive shift: a zeroed conv channel still outputs relu(beta) > 0
        model.get_layer(bn).beta.assign(np.full(model.get_layer(bn).beta.shape, 1.0, "float32"))
        model.get_layer(bn).moving_mean.assign(np.zeros(model.get_layer(bn).moving_mean.shape, "float32"))
    return model


def test_batch_norm_model_equals_zeroed_batch_norm_output_not_zeroed_conv_alone():
    model = bn_functional_model()
    removals = {"conv_a": [1, 4], "conv_b": [0]}
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 2)).astype("float32")

    pruned = remove_filters(model, removals)

    channel_zeroed = zero_channels(model, removals, {"conv_a": "bn_a", "conv_b": "bn_b"})
    np.testing.assert_allclose(logits(pruned, x), logits(channel_zeroed, x), rtol=1e-4, atol=1e-4)
    conv_only_zeroed = zero_channels(model, removals)
    assert not np.allclose(logits(pruned, x), logits(conv_only_zeroed, x), atol=1e-3)
    bn_before, bn_after = model.get_layer("bn_a"), pruned.get_layer("bn_a")
    for before, after in zip(bn_before.weights, bn_after.weights):
        np.testing.assert_array_equal(after.numpy(), before.numpy()[[0, 2, 3, 5]])
    # conv_a: 3*3*2*4 + 4 = 76; bn_a: 4*4 = 16; conv_b: 3*3*4*4 + 4 = 148; bn_b: 4*4 = 16;
    # logits: 4*4*4*4 + 4 = 260
    assert count_params(pruned) == 76 + 16 + 148 + 16 + 260


def test_sequential_model_is_rebuilt_as_sequential():
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                              keras.layers.AveragePooling2D(2, name="avg"), keras.layers.Flatten(name="f"),
                              keras.layers.Dense(3, name="d")], name="seq")
    randomize(model)
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype("float32")
    pruned = remove_filters(model, {"c1": [2]})
    assert isinstance(pruned, keras.Sequential) and pruned.name == "seq"
    np.testing.assert_allclose(logits(pruned, x), logits(zero_channels(model, {"c1": [2]}), x), rtol=1e-5, atol=1e-5)


def residual_model():
    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="branch")(a)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="d")(x))
    randomize(model, seed=5)
    return model


def test_residual_add_pruned_together_equals_zeroed_channels():
    model = residual_model()
    removals = {"stem": [1, 2], "branch": [1, 2]}
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype("float32")
    pruned = remove_filters(model, removals)
    # the stem's zeroed channel passes relu(0) = 0 to the Add; the branch adds its zeroed conv: 0 + 0 = 0
    np.testing.assert_allclose(logits(pruned, x), logits(zero_channels(model, removals), x), rtol=1e-5, atol=1e-5)
    assert pruned.get_layer("branch").kernel.shape == (3, 3, 2, 2)


@pytest.mark.parametrize("removals", [{"stem": [1]}, {"stem": [1], "branch": [2]}])
def test_residual_add_pruned_differently_is_refused_naming_both(removals):
    with pytest.raises(SwtfError, match="branch, stem are coupled by Add 'add'"):
        remove_filters(residual_model(), removals)


def concat_model():
    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(3, 3, name="c1")(inputs)
    x = keras.layers.Concatenate(name="cat")([a, a])
    return keras.Model(inputs, keras.layers.Dense(2, name="d")(keras.layers.Flatten(name="f")(x)))


def fully_conv_model():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, name="c1"),
                             keras.layers.Conv2D(2, 3, name="c2")])


def softmax_model():
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, name="c1"),
                             keras.layers.Activation("softmax", name="sm"), keras.layers.Flatten(),
                             keras.layers.Dense(2)])


@pytest.mark.parametrize("build,removals,message", [
    (lambda: models.build("scnn1", (8, 8, 1), 10), {"conv9": [0]},
     "unknown layer 'conv9'; the Conv2D layers are: conv1_1"),
    (lambda: models.build("scnn1", (8, 8, 1), 10), {"logits": [0]}, "layer 'logits' is a Dense; only Conv2D"),
    (lambda: models.build("scnn1", (8, 8, 1), 10, filters=4), {"conv1_1": [4]}, r"must be integers in \[0, 4\)"),
    (lambda: models.build("scnn1", (8, 8, 1), 10, filters=4), {"conv1_1": [-1]}, r"must be integers in \[0, 4\)"),
    (lambda: models.build("scnn1", (8, 8, 1), 10, filters=4), {"conv1_1": [0, 1, 2, 3, 3]}, "cannot remove all 4"),
    (concat_model, {"c1": [0]}, r"reach layer 'cat' \(Concatenate\), which surgery cannot follow"),
    (fully_conv_model, {"c2": [0]}, "would narrow the model's output"),
    (softmax_model, {"c1": [0]}, "whose softmax activation mixes channels"),
])
def test_bad_requests_are_refused_in_one_line(build, removals, message):
    with pytest.raises(SwtfError, match=message) as caught:
        remove_filters(build(), removals)
    assert "\n" not in str(caught.value)


def test_pruned_layer_stack_round_trips_through_its_config():
    model = models.build("convex_cnn", (8, 8, 1), 10)
    randomize(model)
    pruned = remove_filters(model, {"conv1": [0, 5, 7], "conv2": np.arange(10)})
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32")
    restored = copy_of(pruned)
    np.testing.assert_allclose(logits(restored, x), logits(pruned, x), rtol=1e-6)
    assert restored.hparams["filters"] == [13, 22]
    rebuilt = models.build("convex_cnn", (8, 8, 1), 10, **restored.hparams)
    assert count_params(rebuilt) == count_params(pruned)
