"""Max pooling, global max pooling, sigmoid and tanh in every front-end (Keras, SavedModel, ONNX import,
ONNX export round trip): the translated network computes what the model computes, also on all-negative
inputs where a 'same' pooling that let its zero padding win would differ; unsupported variants are
refused with one line naming the layer or node; the certified bounds of such networks contain sampled
outputs."""

import re

import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

from swtf import certify
from swtf.certify import forward, from_keras
from swtf.certify.network import pool_windows
from swtf.certify.sampling import perturbation_samples
from swtf.certify.savedmodel_frontend import from_saved_model
from swtf.errors import SwtfError
from swtf.onnx import export as onnx_export
from swtf.onnx import from_onnx, ops

L = keras.layers


def _seq(input_shape, *layers, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(input_shape), *layers])


def _conv(filters, kernel, **kwargs):
    return L.Conv2D(filters, kernel, bias_initializer="random_normal", **kwargs)


def _dense(units, **kwargs):
    return L.Dense(units, bias_initializer="random_normal", **kwargs)


def _functional_global_max():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 5, 2))
    a = _conv(3, 3, padding="same", activation="tanh")(inputs)
    b = _conv(3, 1, activation="sigmoid")(a)
    pooled = L.GlobalMaxPooling2D()(L.Add()([a, b]))
    return keras.Model(inputs, _dense(3)(pooled))


MODELS = {
    "max_2x2_stride2_valid": lambda: _seq((8, 8, 2), _conv(3, 3, padding="same", activation="relu"),
                                          L.MaxPooling2D(2), L.Flatten(), _dense(4)),
    "max_3x3_stride1_same": lambda: _seq((6, 6, 2), _conv(3, 2), L.MaxPooling2D(3, strides=1, padding="same"),
                                         L.Flatten(), _dense(4)),
    "max_3x2_strides21_same_odd_on_input": lambda: _seq((7, 5, 2), L.MaxPooling2D((3, 2), strides=(2, 1),
                                                                                   padding="same"),
                                                        L.Flatten(), _dense(4)),
    "max_overlapping_valid": lambda: _seq((9, 7, 1), _conv(2, 2), L.MaxPooling2D(3, strides=2), L.Flatten(),
                                          _dense(3)),
    "max_overlapping_same_stride3": lambda: _seq((8, 7, 1), L.MaxPooling2D((4, 3), strides=(3, 2), padding="same"),
                                                 _conv(2, 2), L.Flatten(), _dense(3)),
    "global_max": lambda: _seq((6, 5, 2), _conv(3, 3, activation="relu"), L.GlobalMaxPooling2D(), _dense(3)),
    "global_max_keepdims_on_input": lambda: _seq((5, 4, 3), L.GlobalMaxPooling2D(keepdims=True), L.Flatten(),
                                                 _dense(3)),
    "sigmoid_tanh_layers": lambda: _seq((5,), _dense(6), L.Activation("sigmoid"), _dense(4),
                                        L.Activation(keras.activations.tanh), _dense(3)),
    "sigmoid_tanh_arguments": lambda: _seq((6, 6, 1), _conv(2, 3, activation="tanh"), L.Flatten(),
                                           _dense(5, activation="sigmoid"), _dense(3)),
    "functional_global_max_sigmoid_tanh": _functional_global_max,
}


def _shape(model):
    return tuple(model.input_shape[1:])


def _inputs(model, count=6, seed=2):
    """Standard normal points (negative values included) and, in the second half, all-negative ones."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count,) + _shape(model))
    x[count // 2:] = -np.abs(x[count // 2:]) - 0.2
    return x.astype(np.float32)


def _keras_logits(model, x):
    return model(x, training=False).numpy().reshape(len(x), -1)


# ----------------------------------------------------------------------------------------------- Keras


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_forward_matches_keras(name):
    model = MODELS[name]()
    network = from_keras(model)
    x = _inputs(model)
    np.testing.assert_allclose(forward(network, x), _keras_logits(model, x), atol=1e-5, rtol=1e-5)
    ops_used = {n.op for n in network.nodes}
    assert ops_used & {"max_pool", "sigmoid", "tanh"}
    if "global" in name:
        assert any(n.op == "max_pool" and n.shape[:2] == (1, 1) and n.params["strides"] == (1, 1)
                   for n in network.nodes)


@pytest.mark.parametrize("pool, strides, size", [(3, 1, (6, 6)), ((3, 2), (2, 1), (7, 5)), (2, 2, (7, 7)),
                                                 ((4, 3), (3, 2), (8, 7))])
def test_same_max_pooling_padding_never_wins_on_negative_inputs(pool, strides, size):
    """On all-negative inputs a 'same' pooling's border outputs are negative; zero padding would give 0."""
    model = _seq(size + (2,), L.MaxPooling2D(pool, strides=strides, padding="same"))
    network = from_keras(_seq(size + (2,), L.MaxPooling2D(pool, strides=strides, padding="same"), L.Flatten()))
    x = -np.random.default_rng(7).uniform(0.5, 2.0, (3,) + size + (2,)).astype(np.float32)
    expected = model(x).numpy()
    ours = forward(network, x).reshape(expected.shape)
    np.testing.assert_array_equal(ours, expected)  # a max of float32 values is exact in float64
    assert np.all(expected < 0)
    zero_padded = pool_windows(network.nodes[1].params, x.astype(np.float64), 0.0).max(axis=-1)
    assert np.any(zero_padded != expected)  # the test would catch padding that wins


def test_sigmoid_and_tanh_in_float64_models_match_to_rounding():
    """A float64 Keras model: the reference evaluation agrees to float64 rounding, far tighter than float32."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6, 6, 1), dtype="float64"),
                              L.Conv2D(2, 3, activation="tanh", dtype="float64"),
                              L.MaxPooling2D(2, padding="same", dtype="float64"), L.Flatten(dtype="float64"),
                              L.Dense(4, activation="sigmoid", dtype="float64"), L.Dense(3, dtype="float64")])
    x = np.random.default_rng(4).normal(size=(5, 6, 6, 1))
    np.testing.assert_allclose(forward(from_keras(model), x), model(x).numpy(), rtol=1e-12, atol=1e-12)


KERAS_REFUSED = {
    "hard_sigmoid": (lambda: _seq((4,), L.Dense(3, activation="hard_sigmoid")), "hard_sigmoid"),
    "softplus": (lambda: _seq((4,), L.Dense(3), L.Activation("softplus")), "softplus"),
    "leaky_relu": (lambda: _seq((4,), L.Dense(3), L.LeakyReLU()), "leaky"),
    "silu_conv": (lambda: _seq((4, 4, 1), L.Conv2D(2, 3, activation="silu"), L.Flatten()), "silu"),
    "max_pool_channels_first": (lambda: _seq((2, 4, 4), L.MaxPooling2D(data_format="channels_first"),
                                             L.Flatten()), "channels_first"),
    "global_max_channels_first": (lambda: _seq((2, 4, 4), L.GlobalMaxPooling2D(data_format="channels_first")),
                                  "channels_first"),
    "max_pool_1d": (lambda: _seq((6, 2), L.MaxPooling1D(), L.Flatten()), "MaxPooling1D"),
}


@pytest.mark.parametrize("name", sorted(KERAS_REFUSED))
def test_keras_refusals_are_one_line_naming_the_layer(name):
    build, reason = KERAS_REFUSED[name]
    model = build()
    with pytest.raises(SwtfError) as err:
        from_keras(model)
    message = str(err.value)
    assert reason in message and "\n" not in message
    assert any(f"'{layer.name}'" in message for layer in model.layers)


# ------------------------------------------------------------------------------------------- SavedModel


@pytest.mark.parametrize("name", ["max_3x2_strides21_same_odd_on_input", "max_3x3_stride1_same",
                                  "max_overlapping_valid", "global_max", "global_max_keepdims_on_input",
                                  "sigmoid_tanh_arguments", "functional_global_max_sigmoid_tanh"])
def test_savedmodel_forward_matches_keras(tmp_path, name):
    model = MODELS[name]()
    path = str(tmp_path / "model")
    model.export(path, verbose=False)
    network = from_saved_model(path)
    x = _inputs(model)
    np.testing.assert_allclose(forward(network, x), _keras_logits(model, x), atol=1e-5, rtol=1e-5)
    assert [n.op for n in network.nodes if n.op in ("max_pool", "sigmoid", "tanh")] == [
        n.op for n in from_keras(model).nodes if n.op in ("max_pool", "sigmoid", "tanh")]


class _RawPools(tf.Module):
    """MaxPoolV2 (window and strides as tensors), explicit pads equal to 'SAME', and tf.reduce_max."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    @tf.function(input_signature=[tf.TensorSpec((None, 7, 5, 3), tf.float32, name="images")])
    def serve(self, images):
        if self.kind == "v2":
            pooled = tf.raw_ops.MaxPoolV2(input=images, ksize=tf.constant([1, 3, 2, 1]),
                                          strides=tf.constant([1, 2, 1, 1]), padding="SAME")
        elif self.kind == "explicit_same":
            pooled = tf.nn.max_pool2d(images, 3, 1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])
        elif self.kind == "explicit_zero":
            pooled = tf.nn.max_pool2d(images, 2, 2, padding=[[0, 0], [0, 0], [0, 0], [0, 0]])
        elif self.kind == "explicit_other":
            pooled = tf.nn.max_pool2d(images, 2, 1, padding=[[0, 0], [1, 0], [0, 0], [0, 0]])
        elif self.kind == "reduce_max_keepdims":
            pooled = tf.reduce_max(tf.sigmoid(images), axis=[-3, -2], keepdims=True)
        else:  # a max over the channels, which is not a pooling
            pooled = tf.reduce_max(images, axis=3, keepdims=True)
        flat = tf.reshape(pooled, (-1, int(np.prod(pooled.shape[1:]))))
        return {"logits": tf.tanh(flat)}


@pytest.mark.parametrize("kind", ["v2", "explicit_same", "explicit_zero", "reduce_max_keepdims"])
def test_savedmodel_raw_max_pool_ops_match_tf(tmp_path, kind):
    module = _RawPools(kind)
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    network = from_saved_model(path)
    x = -np.abs(np.random.default_rng(9).normal(size=(4, 7, 5, 3))).astype(np.float32)
    x[:2] = -x[:2]
    np.testing.assert_allclose(forward(network, x), module.serve(x)["logits"].numpy(), atol=1e-5, rtol=1e-5)
    assert "max_pool" in [n.op for n in network.nodes]


def test_savedmodel_strided_slice_is_still_refused_but_pools_are_not(tmp_path):
    """The module slices its output (StridedSlice): the refusal names that op, not the pooling before it."""
    module = _RawPools("v2")
    module.serve = tf.function(lambda images: {"logits": tf.nn.max_pool2d(images, 2, 2, "SAME")[:, 0, 0, :]},
                               input_signature=[tf.TensorSpec((None, 7, 5, 3), tf.float32, name="images")])
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    with pytest.raises(SwtfError, match="SavedModel op 'StridedSlice'"):
        from_saved_model(path)


@pytest.mark.parametrize("kind, reason", [("explicit_other", r"explicit pads .*\(1, 0, 0, 0\)"),
                                          ("channel_max", r"max over axes \[3\]")])
def test_savedmodel_refusals_are_one_line_naming_the_op(tmp_path, kind, reason):
    module = _RawPools(kind)
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    with pytest.raises(SwtfError, match=reason) as err:
        from_saved_model(path)
    assert "\n" not in str(err.value) and "SavedModel op 'M" in str(err.value)


# ---------------------------------------------------------------------------------------------- ONNX


def _onnx_model(nodes, input_shape, inits=(), opset=13):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _runtime(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.stack([session.run(["y"], {"x": s.reshape(shape).astype(np.float32)})[0].reshape(-1) for s in x])


def _assert_onnx_matches_runtime(model, negative=True):
    net = from_onnx(model)  # includes the load-time check against onnxruntime
    rng = np.random.default_rng(10)
    x = rng.normal(size=(6, net.input_size))
    if negative:
        x[3:] = -np.abs(x[3:]) - 0.2
    x = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(net.network_outputs(x), _runtime(model, x), rtol=1e-5, atol=1e-5)
    return net


def _pool(name="pool", outputs=("y",), inputs=("x",), **attrs):
    return helper.make_node("MaxPool", list(inputs), list(outputs), name=name, **attrs)


@pytest.mark.parametrize("shape, attrs, padding", [
    ([1, 2, 8, 8], dict(kernel_shape=[2, 2], strides=[2, 2]), "valid"),
    ([1, 2, 6, 6], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "same"),
    ([1, 2, 6, 6], dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"), "same"),
    ([1, 2, 7, 5], dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1]), "same"),
    ([1, 2, 7, 5], dict(kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_UPPER"), "same"),
    ([1, 1, 9, 7], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID"), "valid"),
    ([1, 1, 8, 7], dict(kernel_shape=[4, 3], strides=[3, 2], pads=[1, 1, 1, 1]), "same"),
    ([1, 1, 8, 8], dict(kernel_shape=[4, 3], strides=[3, 2], pads=[1, 0, 1, 1]), "same"),
    ([1, 1, 6, 6], dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER"), "same"),  # symmetric pads
    ([1, 2, 8, 8], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, storage_order=1), "valid"),
])
def test_onnx_max_pool_matches_onnxruntime(shape, attrs, padding):
    model = _onnx_model([_pool(**attrs)], shape)
    net = _assert_onnx_matches_runtime(model)
    (pool,) = [n for n in net.network.nodes if n.op == "max_pool"]
    assert pool.params["padding"] == padding


def test_onnx_max_pool_with_an_unused_indices_output_is_accepted():
    model = _onnx_model([_pool(outputs=("y", "idx"), kernel_shape=[2, 2], strides=[2, 2])], [1, 2, 6, 6])
    _assert_onnx_matches_runtime(model)


def test_onnx_conv_sigmoid_pool_tanh_gemm_matches_onnxruntime():
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
             _pool(inputs=("s",), outputs=("p",), kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_UPPER"),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "g", "h"], ["t"], transB=1),
             helper.make_node("Tanh", ["t"], ["y"], name="tanh")]
    inits = [("w", rng.normal(size=(3, 2, 3, 3)).astype(np.float32)), ("b", rng.normal(size=3).astype(np.float32)),
             ("g", rng.normal(size=(4, 3 * 4 * 5)).astype(np.float32)), ("h", rng.normal(size=4).astype(np.float32))]
    net = _assert_onnx_matches_runtime(_onnx_model(nodes, [1, 2, 7, 5], inits))
    assert [n.op for n in net.network.nodes] == ["input", "conv2d", "sigmoid", "max_pool", "reshape", "dense", "tanh"]


@pytest.mark.parametrize("variant", ["global_max_pool", "reduce_max_nchw_keepdims", "reduce_max_nhwc",
                                     "reduce_max_opset18_axes_input"])
def test_onnx_global_max_pooling_matches_onnxruntime(variant):
    rng = np.random.default_rng(12)
    gemm = [helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "g"], ["y"], transB=1)]
    inits = [("g", rng.normal(size=(2, 3)).astype(np.float32))]
    opset = 13
    if variant == "global_max_pool":
        nodes, shape = [helper.make_node("GlobalMaxPool", ["x"], ["p"], name="gmp")], [1, 3, 5, 4]
    elif variant == "reduce_max_nchw_keepdims":
        nodes = [helper.make_node("Tanh", ["x"], ["t"]),
                 helper.make_node("ReduceMax", ["t"], ["p"], name="rmax", axes=[2, -1])]
        shape = [1, 3, 5, 4]
    elif variant == "reduce_max_nhwc":  # the input is NHWC: restarts with the input in its own order
        nodes, shape = [helper.make_node("ReduceMax", ["x"], ["p"], name="rmax", axes=[1, 2], keepdims=0)], [1, 5, 4, 3]
    else:
        nodes = [helper.make_node("ReduceMax", ["x", "axes"], ["p"], name="rmax", keepdims=0)]
        shape, opset = [1, 5, 4, 3], 18
        inits.append(("axes", np.array([1, 2], np.int64)))
    net = _assert_onnx_matches_runtime(_onnx_model(nodes + gemm, shape, inits, opset=opset))
    (pool,) = [n for n in net.network.nodes if n.op == "max_pool"]
    assert pool.shape == (1, 1, 3) and pool.params["strides"] == (1, 1)


def _refusal(model):
    with pytest.raises(SwtfError) as err:
        from_onnx(model)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("attrs, reason", [
    (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0]), r"pads \[1, 1, 0, 0\]"),
    (dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER"), r"pads \[1, 1, 0, 0\]"),
    (dict(kernel_shape=[3, 3], pads=[1, 1, 1, 2]), r"pads \[1, 1, 1, 2\]"),
    (dict(kernel_shape=[2, 2], dilations=[2, 2]), "dilations"),
    (dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), "ceil_mode"),
    (dict(kernel_shape=[2]), "kernel_shape"),
])
def test_onnx_max_pool_refusals_name_the_node(attrs, reason):
    message = _refusal(_onnx_model([_pool(name="the_pool", **attrs)], [1, 2, 5, 5]))
    assert "ONNX node 'the_pool' (MaxPool) is not supported" in message
    assert re.search(reason, message), message


def test_onnx_max_pool_with_its_indices_used_is_refused():
    nodes = [_pool(name="the_pool", outputs=("p", "idx"), kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Cast", ["idx"], ["fi"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["p", "fi"], ["y"])]
    message = _refusal(_onnx_model(nodes, [1, 2, 6, 6]))
    assert "'the_pool' (MaxPool)" in message and "Indices" in message


@pytest.mark.parametrize("axes", [[1], [0, 2], [1, 2, 3]])
def test_onnx_reduce_max_over_other_axes_is_refused(axes):
    message = _refusal(_onnx_model([helper.make_node("ReduceMax", ["x"], ["y"], name="rmax", axes=axes)],
                                   [1, 3, 4, 4]))
    assert "'rmax' (ReduceMax) is not supported" in message


@pytest.mark.parametrize("rule, wrong", [
    ("MaxPool", lambda tr, node, attrs: ops.average_pool(tr, node, attrs)),
    ("Sigmoid", lambda tr, node, attrs: ops.relu(tr, node, attrs)),
])
def test_the_load_check_catches_a_wrong_pool_or_sigmoid_rule(monkeypatch, rule, wrong):
    """The onnxruntime check at load covers the new ops: a deliberately wrong rule is named."""
    monkeypatch.setitem(ops.RULES, rule, wrong)
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             _pool(name="the_pool", inputs=("s",), outputs=("p",), kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
             helper.make_node("Flatten", ["p"], ["y"])]
    with pytest.raises(SwtfError, match="'(sig|the_pool)' .* gives a different value") as err:
        from_onnx(_onnx_model(nodes, [1, 2, 5, 5]))
    assert rule in str(err.value)


# ----------------------------------------------------------------------------------------- ONNX export


@pytest.mark.parametrize("name", ["max_3x2_strides21_same_odd_on_input", "max_2x2_stride2_valid",
                                  "max_overlapping_same_stride3", "global_max", "global_max_keepdims_on_input",
                                  "sigmoid_tanh_layers", "sigmoid_tanh_arguments",
                                  "functional_global_max_sigmoid_tanh"])
def test_onnx_export_round_trips(tmp_path, name):
    model = MODELS[name]()
    x = _inputs(model)
    path = str(tmp_path / "m.onnx")
    gap = onnx_export.export_onnx(model, path, _shape(model), x)
    assert gap <= onnx_export.MAX_GAP
    imported = from_onnx(path)
    assert imported.network.input_shape == from_keras(model).input_shape
    flat = x.reshape(len(x), -1).astype(np.float64)
    np.testing.assert_allclose(imported.network_outputs(flat), _keras_logits(model, x), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(imported.network_outputs(flat), forward(from_keras(model), x), atol=1e-6)


# -------------------------------------------------------------------------------------------- bounds


def _pooled_for_bounds():
    return _seq((6, 6, 1), _conv(3, 3, padding="same", activation="relu"),
                L.MaxPooling2D(3, strides=2, padding="same"), _conv(2, 2, activation="relu"), L.Flatten(),
                _dense(3), seed=13)


def _sigmoid_for_bounds():
    return _seq((5, 5, 1), _conv(2, 3, activation="tanh"), L.GlobalMaxPooling2D(), _dense(6, activation="sigmoid"),
                _dense(3), seed=14)


def _negative_same_pool_for_bounds():
    """'same' pooling straight on the input, bounded on all-negative inputs: padding that won would make
    the lower bounds of the border outputs 0, above every sampled value."""
    return _seq((7, 5, 2), L.MaxPooling2D((3, 2), strides=(2, 1), padding="same"), L.Flatten(), seed=16)


def _conv_same_pool_for_bounds():
    return _seq((6, 6, 1), _conv(2, 3), L.MaxPooling2D(3, strides=2, padding="same"), L.Flatten(), _dense(3),
                seed=17)


BOUNDED = {  # model, input range, clip
    "pooled": (_pooled_for_bounds, (0.0, 1.0), (0.0, 1.0)),
    "sigmoid_tanh_global_max": (_sigmoid_for_bounds, (0.0, 1.0), (0.0, 1.0)),
    "negative_same_pool": (_negative_same_pool_for_bounds, (-1.0, -0.5), (-1.0, 0.0)),
    "conv_same_pool_unclipped": (_conv_same_pool_for_bounds, (-1.0, 1.0), None),
}


@pytest.mark.parametrize("name", sorted(BOUNDED))
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_bounds_contain_sampled_outputs(name, method):
    build, (lo, hi), clip = BOUNDED[name]
    model = build()
    network = from_keras(model)
    rng = np.random.default_rng(15)
    x = lo + (hi - lo) * rng.random((2,) + _shape(model))
    eps = 0.05
    lower, upper = certify.bounds(model, x, eps, method=method, clip=clip)
    assert np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower <= upper)
    for i in range(len(x)):
        samples = perturbation_samples(x[i], eps, "linf", clip, 3000, rng)
        values = forward(network, samples)
        assert np.all(values >= lower[i] - 1e-9), (values.min(axis=0), lower[i])
        assert np.all(values <= upper[i] + 1e-9), (values.max(axis=0), upper[i])
        # the bounds are informative (not trivially wide) around the observed range
        assert np.all(upper[i] - lower[i] < 100 * (values.max(axis=0) - values.min(axis=0)) + 10)
    if name == "negative_same_pool":
        assert np.all(upper < 0)  # every pooled value is negative; so must its bound be
