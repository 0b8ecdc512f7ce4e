"""ONNX front-end: every supported op on hand-made graphs (onnx.helper) against onnxruntime, the
VNN-COMP networks, refusals naming the node, and a mismatch located at the node that causes it."""

import numpy as np
import os
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from swtf.certify.network import forward
from swtf.errors import SwtfError
from swtf.onnx import frontend, from_onnx, ops
from swtf.onnx.constants import flatten_shape

VNNCOMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "vnncomp")
RNG = np.random.default_rng(0)


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def make_model(nodes, input_shape, output_shape, inits=(), opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(np.asarray(v), name) for name, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def runtime(model, x):
    """onnxruntime's outputs, one sample at a time, flattened (the independent reference)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.stack([session.run(None, {"x": s.reshape(shape).astype(np.float32)})[0].reshape(-1) for s in x])


def assert_matches_runtime(model, size, samples=6):
    net = from_onnx(model)
    x = RNG.standard_normal((samples, size)).astype(np.float32).astype(np.float64)
    # network's own float64 evaluation, mapped back to ONNX order by the recorded output order
    ours = forward(net.network, net.to_network(x)).reshape(samples, -1)
    mapped = np.empty_like(ours)
    mapped[:, net.output_perm] = ours
    reference = runtime(model, x)
    np.testing.assert_allclose(mapped, reference, rtol=1e-5, atol=1e-5)
    return net


def node(op, inputs, outputs, name=None, **attrs):
    return helper.make_node(op, inputs, outputs, name=name or f"my_{op.lower()}", **attrs)


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta", [(0, 0, 1.0, 1.0), (0, 1, 0.5, 2.0), (1, 1, -1.5, 0.0)])
def test_gemm_with_transposes_alpha_beta(trans_a, trans_b, alpha, beta):
    w = weights(3, 4) if not trans_b else weights(4, 3)
    x_shape = [3, 1] if trans_a else [1, 3]
    model = make_model([node("Gemm", ["x", "w", "c"], ["y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)],
                       x_shape, [1, 4], [("w", w), ("c", weights(4))])
    assert_matches_runtime(model, 3)


def test_gemm_with_the_input_as_right_operand():
    model = make_model([node("Gemm", ["w", "x", "c"], ["y"], transA=1)], [3, 1], [4, 1],
                       [("w", weights(3, 4)), ("c", weights(4, 1))])
    assert_matches_runtime(model, 3)


@pytest.mark.parametrize("left", [True, False])
def test_matmul_with_either_side_constant_on_a_1d_input(left):
    inputs = ["x", "w"] if left else ["w", "x"]
    w = weights(5, 2) if left else weights(2, 5)
    assert_matches_runtime(make_model([node("MatMul", inputs, ["y"])], [5], [2], [("w", w)]), 5)


def test_add_sub_mul_div_by_constants_and_of_two_tensors():
    c = weights(1, 4)
    nodes = [node("Add", ["x", "c"], ["a"]), node("Sub", ["c", "a"], ["b"]), node("Mul", ["b", "c"], ["m"]),
             node("Div", ["m", "d"], ["q"]), helper.make_node("Sub", ["q", "x"], ["s"], name="diff"),
             helper.make_node("Add", ["s", "m"], ["t"], name="sum"), helper.make_node("Sub", ["t", "c"], ["y"])]
    model = make_model(nodes, [1, 4], [1, 4], [("c", c), ("d", np.array([2.0, -4.0, 0.5, 3.0], np.float32))])
    net = assert_matches_runtime(model, 4)
    assert {n.op for n in net.network.nodes} == {"input", "affine", "add"}


def test_division_by_zero_and_by_the_input_are_refused():
    model = make_model([node("Div", ["x", "z"], ["y"])], [1, 2], [1, 2], [("z", np.array([1.0, 0.0], np.float32))])
    with pytest.raises(SwtfError, match="'my_div' .*division by zero"):
        from_onnx(model)
    model = make_model([node("Div", ["z", "x"], ["y"])], [1, 2], [1, 2], [("z", np.ones(2, np.float32))])
    with pytest.raises(SwtfError, match="'my_div' .*constant divided by"):
        from_onnx(model)


@pytest.mark.parametrize("attrs", [dict(pads=[1, 0, 2, 1], strides=[2, 1]), dict(auto_pad="SAME_UPPER", strides=[2, 2]),
                                   dict(auto_pad="SAME_LOWER"), dict(auto_pad="VALID")])
def test_conv_nchw_pads_strides_then_flatten_and_gemm(attrs):
    nodes = [node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 2], **attrs), node("Relu", ["c"], ["r"]),
             node("Flatten", ["r"], ["f"], axis=1)]
    probe = make_model(nodes, [1, 3, 7, 6], None, [("w", weights(4, 3, 3, 2)), ("b", weights(4))])
    probe.graph.output[0].name = "f"
    size = runtime(probe, RNG.standard_normal((1, 3 * 7 * 6))).shape[1]
    nodes.append(node("Gemm", ["f", "g", "h"], ["y"], transB=1))
    model = make_model(nodes, [1, 3, 7, 6], [1, 5], [("w", weights(4, 3, 3, 2)), ("b", weights(4)),
                                                     ("g", weights(5, size)), ("h", weights(5))])
    net = assert_matches_runtime(model, 3 * 7 * 6)
    assert net.network.input_shape == (7, 6, 3)  # NCHW input stored as HWC


def test_conv_output_in_nchw_order_and_batch_norm():
    nodes = [node("BatchNormalization", ["x", "s", "o", "mu", "var"], ["n"], epsilon=1e-3),
             node("Conv", ["n", "w"], ["y"], kernel_shape=[2, 2], pads=[0, 1, 1, 0])]
    model = make_model(nodes, [1, 2, 5, 5], [1, 3, 5, 5],
                       [("s", weights(2)), ("o", weights(2)), ("mu", weights(2)),
                        ("var", np.array([0.5, 2.0], np.float32)), ("w", weights(3, 2, 2, 2))])
    net = assert_matches_runtime(model, 50)
    assert not np.array_equal(net.output_perm, np.arange(75))  # the output order is tracked, not assumed


def test_nhwc_input_transposed_to_nchw_restarts_with_the_input_in_hwc_order():
    nodes = [node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]), node("Conv", ["t", "w"], ["c"], kernel_shape=[3, 3]),
             node("Transpose", ["c"], ["u"], name="back", perm=[0, 2, 3, 1]), node("Reshape", ["u", "shape"], ["y"])]
    model = make_model(nodes, [1, 6, 6, 2], [1, 64], [("w", weights(4, 2, 3, 3)), ("shape", np.array([1, -1]))])
    net = assert_matches_runtime(model, 72)
    assert net.network.input_shape == (6, 6, 2) and np.array_equal(net.input_perm, np.arange(72))
    assert np.array_equal(net.output_perm, np.arange(64))


@pytest.mark.parametrize("attrs", [dict(), dict(strides=[2, 2]), dict(auto_pad="SAME_UPPER"),
                                   dict(pads=[1, 1, 0, 1]), dict(pads=[1, 0, 1, 1], count_include_pad=1)])
def test_average_pool(attrs):
    model = make_model([node("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], **attrs)], [1, 2, 5, 6], None)
    assert_matches_runtime(model, 60)


def test_reshape_squeeze_unsqueeze_identity_and_constant_folding():
    """The weight is an initializer-only sub-graph (Transpose, Mul by a Constant); the reshape target
    comes from Shape -> Gather -> Unsqueeze -> Concat, as PyTorch exports write it."""
    nodes = [helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0))),
             node("Transpose", ["w"], ["wt"], perm=[1, 0]), node("Mul", ["wt", "two"], ["w2"]),
             node("Shape", ["x"], ["sh"]), node("Gather", ["sh", "zero"], ["n"], axis=0),
             node("Unsqueeze", ["n", "axes"], ["n1"]), node("Concat", ["n1", "minus"], ["target"], axis=0),
             node("Reshape", ["x", "target"], ["flat"]), node("Identity", ["flat"], ["i"]),
             node("Unsqueeze", ["i", "axes"], ["u"], name="unsqueeze_data"), node("Squeeze", ["u", "axes"], ["s"]),
             node("MatMul", ["s", "w2"], ["y"])]
    model = make_model(nodes, [1, 2, 3], [1, 4], [("w", weights(4, 6)), ("zero", np.array(0)),
                                                  ("axes", np.array([0])), ("minus", np.array([-1]))])
    net = assert_matches_runtime(model, 6)
    assert [n.op for n in net.network.nodes] == ["input", "dense"]


def test_ir3_initializers_listed_as_inputs_are_not_inputs():
    model = make_model([node("MatMul", ["x", "w"], ["y"])], [1, 3], [1, 2], [("w", weights(3, 2))])
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2]))
    assert from_onnx(model).input_name == "x"


@pytest.mark.parametrize("name,size", [("test/test_nano", 1), ("test/test_tiny", 1), ("test/test_small", 1),
                                       ("test/test_sat", 5), ("mnistfc/mnist-net_256x2", 784)])
def test_vnncomp_networks_match_onnxruntime(name, size):
    model = onnx.load(f"{VNNCOMP}/{name}.onnx")
    net = from_onnx(model)
    x = RNG.random((6, size))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = np.stack([session.run(None, {net.input_name: s.reshape(net.input_shape).astype(np.float32)})[0]
                          .reshape(-1) for s in x])
    np.testing.assert_allclose(net.network_outputs(x.astype(np.float32)), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,attrs", [("LpPool", dict(kernel_shape=[2, 2])), ("HardSigmoid", {}), ("LeakyRelu", {})])
def test_unsupported_ops_are_refused_naming_the_node(op, attrs):
    model = make_model([node("Relu", ["x"], ["r"]), helper.make_node(op, ["r"], ["y"], name="the_culprit", **attrs)],
                       [1, 1, 4, 4], None)
    with pytest.raises(SwtfError, match=f"ONNX node 'the_culprit' \\({op}\\) is not supported"):
        from_onnx(model)


@pytest.mark.parametrize("attrs", [dict(dilations=[2, 2]), dict(group=2)])
def test_conv_dilation_and_groups_are_refused(attrs):
    model = make_model([node("Conv", ["x", "w"], ["y"], kernel_shape=[2, 2], **attrs)], [1, 2, 5, 5], None,
                       [("w", weights(2, 2 // attrs.get("group", 1), 2, 2))])
    with pytest.raises(SwtfError, match="'my_conv' \\(Conv\\).*group"):
        from_onnx(model)


def test_a_mismatch_with_onnxruntime_names_the_first_wrong_node(monkeypatch):
    """A deliberately wrong Relu rule (identity) is caught by the load check, which names that node."""
    monkeypatch.setitem(ops.RULES, "Relu", lambda tr, n, attrs: tr.tensor(n.input[0]))
    model = make_model([node("MatMul", ["x", "w"], ["h"]), node("Relu", ["h"], ["r"]),
                        node("MatMul", ["r", "v"], ["y"], name="out")], [1, 3], [1, 2],
                       [("w", weights(3, 8)), ("v", weights(8, 2))])
    with pytest.raises(SwtfError, match="ONNX node 'my_relu' \\(Relu\\) gives a different value"):
        from_onnx(model)


def test_the_load_check_samples_the_given_box():
    model = make_model([node("Relu", ["x"], ["y"])], [1, 3], [1, 3])
    net = from_onnx(model, np.zeros(3), np.ones(3))
    points = frontend.sample_box(np.zeros(3), np.ones(3), 3, 50, seed=1)
    assert points.min() >= 0 and points.max() <= 1 and np.allclose(points[0], 0.5)
    assert frontend.check_against_runtime(net, -np.ones(3), np.ones(3)) == 0.0


def test_flatten_axis_counted_from_the_end_or_equal_to_the_rank():
    """ONNX Flatten takes axis in [-rank, rank]: a negative axis counts from the end (checked against
    onnxruntime through a MatMul whose shape depends on it) and axis = rank leaves a trailing 1."""
    nodes = [node("Flatten", ["x"], ["f"], axis=-1), node("MatMul", ["f", "w"], ["y"])]
    assert_matches_runtime(make_model(nodes, [1, 4], [1, 3], [("w", weights(4, 3))]), 4)
    assert flatten_shape((2, 3, 4), -2) == (2, 12) and flatten_shape((1, 4), 2) == (4, 1)
    with pytest.raises(SwtfError, match="Flatten axis 3"):
        flatten_shape((1, 4), 3)


def test_a_double_precision_model_is_run_in_double():
    """A DOUBLE input is fed to onnxruntime as float64 (feeding float32 made it raise), also when the
    mismatch search asks for intermediate tensors."""
    graph = helper.make_graph(
        [node("Gemm", ["x", "w", "b"], ["h"], transB=1), node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 2])],
        [numpy_helper.from_array(weights(2, 3).astype(np.float64), "w"),
         numpy_helper.from_array(weights(2).astype(np.float64), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    net = from_onnx(model)
    x = RNG.standard_normal((4, 3))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = np.stack([session.run(None, {"x": s.reshape(1, 3)})[0].reshape(-1) for s in x])
    np.testing.assert_allclose(net.runtime_outputs(x), reference, rtol=1e-12)
    assert frontend._first_mismatch(net, x) == f"the ONNX output {net.output_name!r}"


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_and_unsqueeze_with_negative_and_default_axes(opset):
    """Axes as attributes (opset 11) or inputs (13), negative ones counted from the end, and Squeeze with
    no axes (every unit axis), on data and folded constants, against onnxruntime."""
    def axes_of(name, values):
        if opset >= 13:
            return {"inputs": [name + "_axes"]}, [(name + "_axes", np.array(values, np.int64))]
        return {"axes": values}, []

    up, up_init = axes_of("up", [1, -1])
    down, down_init = axes_of("down", [-1, 1])
    nodes = [node("Unsqueeze", ["x"] + up.pop("inputs", []), ["u"], **up),  # (1, 4) -> (1, 1, 4, 1)
             node("Squeeze", ["u"] + down.pop("inputs", []), ["s"], **down),  # -> (1, 4)
             node("Unsqueeze", ["c"] + ([] if opset < 13 else ["up_axes"]), ["cu"], name="fold_unsqueeze",
                  **({} if opset >= 13 else {"axes": [1, -1]})),
             node("Squeeze", ["cu"], ["cs"], name="fold_squeeze"),  # every unit axis: (1, 1, 4, 1) -> (4,)
             node("Add", ["s", "cs"], ["y"])]
    inits = up_init + down_init + [("c", weights(1, 4))]
    assert_matches_runtime(make_model(nodes, [1, 4], [1, 4], inits, opset=opset), 4)
