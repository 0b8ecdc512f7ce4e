"""Translation rules: each input-dependent ONNX op as primitive ops of a `Network`.

A rule takes the translator `tr` (see `frontend`), the ONNX node and its attributes, and returns the
`layout.Tensor` of the node's output. Operands that are constants arrive folded (`tr.const`).

  Gemm, MatMul (one operand constant, the other a vector)  -> dense over the flattened input
  Add, Sub of two input-dependent tensors                  -> add (Sub via an affine negation)
  Add, Sub, Mul, Div with a constant                       -> affine (per element, in the node's order)
  BatchNormalization (inference)                           -> affine with scale / sqrt(var + eps)
  Conv (2-D, NCHW weights, group 1, no dilation)           -> conv2d on the HWC node
  AveragePool (2-D)                                        -> avg_pool, or conv2d + affine for other pads
  MaxPool (2-D, pads 'valid' or TF's 'same', no dilation)  -> max_pool (padded positions never win)
  GlobalMaxPool, ReduceMax over the two spatial axes       -> max_pool over the whole map
  Relu -> relu;  Sigmoid -> sigmoid;  Tanh -> tanh
  Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Identity -> layout only
Anything else is refused by the translator, naming the node.
"""

import math

import numpy as np

from swtf.certify.network import conv_output_size, same_pads
from swtf.onnx import layout
from swtf.onnx.constants import flatten_shape, reshape_target, squeeze_axes, squeeze_shape, unsqueeze_shape
from swtf.onnx.layout import Tensor


def _name(node):
    return node.name or node.output[0]


def _vector_matmul(tr, node, x, weight, x_on_left, out_shape, bias):
    """dense y = x @ weight (x on the left) or weight @ x, for a data operand `x` holding one vector."""
    weight = np.asarray(weight, np.float64)
    if weight.ndim != 2:
        tr.refuse(node, f"a constant operand of shape {weight.shape} (only 2-D weights are supported)")
    kernel = weight if x_on_left else weight.T
    if x.size != kernel.shape[0]:
        tr.refuse(node, f"the input-dependent operand {x.shape} is not one vector of length {kernel.shape[0]}")
    bias = np.zeros(math.prod(out_shape)) if bias is None else np.broadcast_to(bias, out_shape).reshape(-1)
    node_id = tr.builder.dense(tr.flat(x), kernel[x.perm], bias, _name(node))
    return Tensor(node_id, tuple(out_shape), layout.identity(math.prod(out_shape)))


def _operands(tr, node, a_name, b_name):
    """(data tensor, constant, data is the left operand), refusing a product of two data tensors."""
    if tr.is_data(a_name) and tr.is_data(b_name):
        tr.refuse(node, "a product of two input-dependent tensors")
    if tr.is_data(a_name):
        return tr.tensor(a_name), tr.const(b_name), True
    return tr.tensor(b_name), tr.const(a_name), False


def matmul(tr, node, attrs):
    x, weight, left = _operands(tr, node, node.input[0], node.input[1])
    probe = (np.empty(x.shape), weight) if left else (weight, np.empty(x.shape))
    try:
        out_shape = np.matmul(*probe).shape
    except ValueError as err:
        tr.refuse(node, f"shapes do not multiply ({err})")
    return _vector_matmul(tr, node, x, weight, left, out_shape, None)


def gemm(tr, node, attrs):
    """Y = alpha * A' @ B' + beta * C with A' = A^T if transA, B' = B^T if transB."""
    x, weight, left = _operands(tr, node, node.input[0], node.input[1])
    trans = attrs.get("transB" if left else "transA", 0)
    weight = np.asarray(weight, np.float64).T if trans else np.asarray(weight, np.float64)
    weight = attrs.get("alpha", 1.0) * weight
    rows = 1 if left else weight.shape[0]
    cols = weight.shape[1] if left else 1
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = attrs.get("beta", 1.0) * np.asarray(tr.const(node.input[2]), np.float64)
    return _vector_matmul(tr, node, x, weight, left, (rows, cols), bias)


def _affine(tr, node, x, scale, shift):
    node_shape = tr.builder.shape(x.node)
    scale_net, shift_net = (layout.network_constant(c, x, node_shape) for c in (scale, shift))
    if scale_net is None or shift_net is None:
        tr.refuse(node, f"a constant that broadcasts {x.shape} to a larger shape")
    node_id = tr.builder.affine(x.node, scale_net, shift_net, _name(node))
    return Tensor(node_id, x.shape, x.perm, x.pure)


def binary(tr, node, attrs):
    """x + c, x - c, c - x, x * c, x / c (affine), x + y and x - y (add)."""
    kind = node.op_type
    if tr.is_data(node.input[0]) and tr.is_data(node.input[1]) and kind in ("Add", "Sub"):
        a, b = tr.tensor(node.input[0]), tr.tensor(node.input[1])
        if a.shape != b.shape or not np.array_equal(a.perm, b.perm):
            tr.refuse(node, f"operands of shapes {a.shape} and {b.shape} in different layouts")
        b_node = tr.builder.reshape(b.node, tr.builder.shape(a.node), _name(node) + "/align") if (
            tr.builder.shape(a.node) != tr.builder.shape(b.node)) else b.node
        if kind == "Sub":
            b_node = tr.builder.affine(b_node, np.float64(-1.0), np.float64(0.0), _name(node) + "/negate")
        return Tensor(tr.builder.add(a.node, b_node, _name(node)), a.shape, a.perm, a.pure and b.pure)
    x, c, left = _operands(tr, node, node.input[0], node.input[1])
    c = np.asarray(c, np.float64)
    if kind == "Add":
        return _affine(tr, node, x, 1.0, c)
    if kind == "Sub":
        return _affine(tr, node, x, 1.0, -c) if left else _affine(tr, node, x, -1.0, c)
    if kind == "Mul":
        return _affine(tr, node, x, c, 0.0)
    if not left:
        tr.refuse(node, "a constant divided by an input-dependent tensor")
    if np.any(c == 0):
        tr.refuse(node, "division by zero")
    return _affine(tr, node, x, 1.0 / c, 0.0)


def batch_norm(tr, node, attrs):
    """y = scale * (x - mean) / sqrt(var + epsilon) + bias, per channel (axis 1)."""
    if attrs.get("training_mode", 0):
        tr.refuse(node, "training_mode=1 (only inference statistics are supported)")
    x = tr.tensor(node.input[0])
    scale, bias, mean, var = (np.asarray(tr.const(n), np.float64) for n in node.input[1:5])
    factor = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))
    channel = (1, -1) + (1,) * (len(x.shape) - 2)
    return _affine(tr, node, x, factor.reshape(channel), (bias - mean * factor).reshape(channel))


def relu(tr, node, attrs):
    x = tr.tensor(node.input[0])
    return Tensor(tr.builder.relu(x.node, _name(node)), x.shape, x.perm, x.pure)


def activation(tr, node, attrs):
    """Sigmoid and Tanh: elementwise, so in any element order."""
    x = tr.tensor(node.input[0])
    return Tensor(tr.builder.activation(x.node, node.op_type.lower(), _name(node)), x.shape, x.perm, x.pure)


def _relabel(x, shape):
    return Tensor(x.node, tuple(int(d) for d in shape), x.perm, x.pure)


def flatten(tr, node, attrs):
    x = tr.tensor(node.input[0])
    return _relabel(x, flatten_shape(x.shape, attrs.get("axis", 1)))


def reshape(tr, node, attrs):
    x = tr.tensor(node.input[0])
    try:
        shape = reshape_target(x.shape, tr.const(node.input[1]), attrs.get("allowzero", 0))
    except ValueError as err:
        tr.refuse(node, f"cannot reshape {x.shape}: {err}")
    return _relabel(x, shape)


def squeeze_or_unsqueeze(tr, node, attrs):
    x = tr.tensor(node.input[0])
    axes = squeeze_axes(attrs, tr.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None)
    try:
        shape = (squeeze_shape if node.op_type == "Squeeze" else unsqueeze_shape)(x.shape, axes)
    except ValueError as err:
        tr.refuse(node, str(err))
    return _relabel(x, shape)


def transpose(tr, node, attrs):
    x = tr.tensor(node.input[0])
    axes = tuple(attrs.get("perm", range(len(x.shape) - 1, -1, -1)))
    shape = tuple(x.shape[a] for a in axes)
    return Tensor(x.node, shape, layout.transposed_perm(x.perm, x.shape, axes), x.pure)


def identity(tr, node, attrs):
    return tr.tensor(node.input[0])


def _spatial(tr, node, attrs, x, kernel_hw):
    """(strides, pads as (top, bottom, left, right)) of a 2-D Conv or AveragePool node."""
    if len(x.shape) != 4 or x.shape[0] != 1:
        tr.refuse(node, f"input of shape {x.shape} (only 2-D NCHW with batch 1 is supported)")
    strides = tuple(attrs.get("strides", (1, 1)))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads_h = same_pads(x.shape[2], kernel_hw[0], strides[0])
        pads_w = same_pads(x.shape[3], kernel_hw[1], strides[1])
        if auto == "SAME_LOWER":
            pads_h, pads_w = pads_h[::-1], pads_w[::-1]
        return strides, pads_h + pads_w
    if auto == "VALID":
        return strides, (0, 0, 0, 0)
    begin_h, begin_w, end_h, end_w = attrs.get("pads", (0, 0, 0, 0))
    return strides, (begin_h, end_h, begin_w, end_w)


def conv(tr, node, attrs):
    x = tr.tensor(node.input[0])
    weight = np.asarray(tr.const(node.input[1]), np.float64)
    if weight.ndim != 4:
        tr.refuse(node, f"a {weight.ndim - 2}-D convolution (only 2-D is supported)")
    if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", (1, 1))):
        tr.refuse(node, f"group={attrs.get('group', 1)}, dilations={attrs.get('dilations', (1, 1))} (only 1 "
                        "is supported)")
    strides, pads = _spatial(tr, node, attrs, x, weight.shape[2:])
    bias = tr.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(weight.shape[0])
    node_id = tr.builder.conv2d(tr.hwc(x, node), weight.transpose(2, 3, 1, 0), bias, strides, pads, _name(node))
    return _hwc_tensor(tr, node_id)


def _hwc_tensor(tr, node_id):
    height, width, channels = tr.builder.shape(node_id)
    shape = (1, channels, height, width)
    return Tensor(node_id, shape, layout.hwc_perm(shape))


def average_pool(tr, node, attrs):
    """TF-style avg_pool for 'valid' or TF 'same' pads; else a conv summing windows, then 1 / count."""
    x = tr.tensor(node.input[0])
    kernel_hw = tuple(attrs["kernel_shape"])
    strides, pads = _spatial(tr, node, attrs, x, kernel_hw)
    height, width = x.shape[2:]
    if attrs.get("ceil_mode", 0) and ((height + pads[0] + pads[1] - kernel_hw[0]) % strides[0]
                                      or (width + pads[2] + pads[3] - kernel_hw[1]) % strides[1]):
        tr.refuse(node, "ceil_mode=1 with a partial last window")
    include_pad = attrs.get("count_include_pad", 0)
    tf_same = same_pads(height, kernel_hw[0], strides[0]) + same_pads(width, kernel_hw[1], strides[1])
    source = tr.hwc(x, node)
    if pads == (0, 0, 0, 0) or (pads == tf_same and not include_pad):
        padding = "valid" if pads == (0, 0, 0, 0) else "same"
        return _hwc_tensor(tr, tr.builder.avg_pool(source, kernel_hw, strides, padding, _name(node)))
    channels = x.shape[1]
    ones = np.eye(channels)[None, None] * np.ones(kernel_hw + (1, 1))
    summed = tr.builder.conv2d(source, ones, np.zeros(channels), strides, pads, _name(node) + "/sum")
    if include_pad:
        counts = np.float64(math.prod(kernel_hw))
    else:
        rows = _window_counts(height, kernel_hw[0], strides[0], pads[:2])
        cols = _window_counts(width, kernel_hw[1], strides[1], pads[2:])
        counts = np.outer(rows, cols)[:, :, None]
    return _hwc_tensor(tr, tr.builder.affine(summed, 1.0 / counts, np.float64(0.0), _name(node)))


def max_pool(tr, node, attrs):
    """MaxPool as max_pool, for pads that are zero ('valid') or TF's 'same' pads; any other pads refused.

    The `Indices` output is refused where it is used; `storage_order` only concerns it and is ignored.
    """
    if len(node.output) > 1 and node.output[1] and node.output[1] in tr.used:
        tr.refuse(node, f"its Indices output {node.output[1]!r} is used (only the pooled values are supported)")
    x = tr.tensor(node.input[0])
    kernel_hw = tuple(int(k) for k in attrs["kernel_shape"])
    if len(kernel_hw) != 2:
        tr.refuse(node, f"kernel_shape {list(kernel_hw)} (only 2-D pooling is supported)")
    dilations = tuple(attrs.get("dilations", (1, 1)))
    if any(d != 1 for d in dilations):
        tr.refuse(node, f"dilations={list(dilations)} (only 1 is supported)")
    strides, pads = _spatial(tr, node, attrs, x, kernel_hw)
    pads = tuple(int(p) for p in pads)
    height, width = x.shape[2:]
    if attrs.get("ceil_mode", 0) and ((height + pads[0] + pads[1] - kernel_hw[0]) % strides[0]
                                      or (width + pads[2] + pads[3] - kernel_hw[1]) % strides[1]):
        tr.refuse(node, "ceil_mode=1 with a partial last window")
    if pads == (0, 0, 0, 0):
        padding = "valid"
    elif pads == same_pads(height, kernel_hw[0], strides[0]) + same_pads(width, kernel_hw[1], strides[1]):
        padding = "same"
    else:
        begin_end = [pads[0], pads[2], pads[1], pads[3]]
        tr.refuse(node, f"pads {begin_end} (ONNX order begin_h, begin_w, end_h, end_w): only zero pads or TF's "
                        "'same' pads (the odd extra row/column at the end) are supported")
    return _hwc_tensor(tr, tr.builder.max_pool(tr.hwc(x, node), kernel_hw, strides, padding, _name(node)))


def global_max_pool(tr, node, attrs):
    """GlobalMaxPool of (1, C, H, W): a max_pool over the whole map, giving (1, C, 1, 1)."""
    x = tr.tensor(node.input[0])
    if len(x.shape) != 4 or x.shape[0] != 1:
        tr.refuse(node, f"input of shape {x.shape} (only 2-D NCHW with batch 1 is supported)")
    return _hwc_tensor(tr, tr.builder.max_pool(tr.hwc(x, node), x.shape[2:], (1, 1), "valid", _name(node)))


def reduce_max(tr, node, attrs):
    """ReduceMax over the two spatial axes of a (1, ., ., .) tensor (NCHW axes (2, 3), NHWC axes (1, 2), as
    exporters write global max pooling): a max_pool over the whole map."""
    x = tr.tensor(node.input[0])
    if len(node.input) > 1 and node.input[1]:
        axes = tr.const(node.input[1])
    else:
        axes = attrs.get("axes", ())
    if not np.size(axes):  # no axes: every axis (or, with noop_with_empty_axes, none)
        axes = () if attrs.get("noop_with_empty_axes", 0) else range(len(x.shape))
    axes = sorted({int(a) % len(x.shape) for a in np.ravel(axes)}) if len(x.shape) else []
    if len(x.shape) != 4 or x.shape[0] != 1 or len(axes) != 2 or 0 in axes:
        tr.refuse(node, f"a max over axes {axes} of shape {x.shape} (only over two non-batch axes of a 4-D "
                        "tensor with batch 1, i.e. global max pooling)")
    (channel_axis,) = {1, 2, 3} - set(axes)
    order = (0, axes[0], axes[1], channel_axis)
    want = np.arange(x.size).reshape(x.shape).transpose(order).ravel()
    map_shape = tuple(x.shape[a] for a in order[1:])
    source = tr.hwc(x, node, want, map_shape)
    node_id = tr.builder.max_pool(source, map_shape[:2], (1, 1), "valid", _name(node))
    keep = attrs.get("keepdims", 1)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else (1, x.shape[channel_axis])
    return Tensor(node_id, shape, layout.identity(x.shape[channel_axis]))


def _window_counts(size, kernel, stride, pads):
    """Number of in-bounds elements of each window along one axis."""
    out = conv_output_size(size, kernel, stride, *pads)
    starts = np.arange(out) * stride - pads[0]
    return np.minimum(starts + kernel, size) - np.maximum(starts, 0)


RULES = {
    "Gemm": gemm, "MatMul": matmul, "Add": binary, "Sub": binary, "Mul": binary, "Div": binary,
    "BatchNormalization": batch_norm, "Relu": relu, "Flatten": flatten, "Reshape": reshape,
    "Squeeze": squeeze_or_unsqueeze, "Unsqueeze": squeeze_or_unsqueeze, "Transpose": transpose,
    "Identity": identity, "Conv": conv, "AveragePool": average_pool, "MaxPool": max_pool,
    "GlobalMaxPool": global_max_pool, "ReduceMax": reduce_max, "Sigmoid": activation, "Tanh": activation,
}
