"""Constant folding: NumPy evaluation of ONNX nodes whose inputs are all constants.

Initializer-only sub-graphs (a weight transposed or scaled, BatchNormalization statistics, the shape
arithmetic Shape -> Gather -> Concat -> Reshape that exporters emit) are evaluated once here, so the
translation sees plain arrays. Each rule follows the ONNX operator's definition for the cases exporters
produce; an op outside the table is refused by name (`fold` raises KeyError, the caller names the node).
"""

import numpy as np
from onnx import helper, numpy_helper

from swtf.errors import SwtfError


def attributes(node):
    """{name: Python value} of an ONNX node's attributes."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant(attrs):
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    raise KeyError("Constant without a value, value_float(s) or value_int(s) attribute")


def squeeze_axes(attrs, axes_input):
    """Squeeze/Unsqueeze axes from the `axes` input (opset >= 13; None if absent) or attribute (older
    opsets), or ()."""
    if axes_input is not None:
        return tuple(int(a) for a in axes_input)
    return tuple(attrs.get("axes", ()))


def squeeze_shape(shape, axes):
    """Squeeze's output shape: the `axes` (negative ones counted from the end; none: every unit axis)
    removed. ValueError for a non-unit axis."""
    axes = tuple(a % len(shape) for a in axes) or tuple(i for i, d in enumerate(shape) if d == 1)
    if any(shape[a] != 1 for a in axes):
        raise ValueError(f"squeezing a non-unit axis of {tuple(shape)}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def unsqueeze_shape(shape, axes):
    """Unsqueeze's output shape: unit axes inserted at `axes` of the output (negative: from its end)."""
    rank, shape = len(shape) + len(axes), list(shape)
    for axis in sorted(a % rank for a in axes):
        shape.insert(axis, 1)
    return tuple(shape)


def _unsqueeze(attrs, x, *rest):
    return x.reshape(unsqueeze_shape(x.shape, squeeze_axes(attrs, rest[0] if rest else None)))


def _squeeze(attrs, x, *rest):
    return x.reshape(squeeze_shape(x.shape, squeeze_axes(attrs, rest[0] if rest else None)))


def _flatten(attrs, x):
    return x.reshape(flatten_shape(x.shape, attrs.get("axis", 1)))


def flatten_shape(shape, axis=1):
    """ONNX Flatten's 2-D output shape; `axis` in [-rank, rank], a negative one counted from the end."""
    rank = len(shape)
    if rank == 0:
        return 1, 1
    if not -rank <= axis <= rank:
        raise SwtfError(f"Flatten axis {axis} is outside [-{rank}, {rank}] for a rank-{rank} tensor")
    axis = axis + rank if axis < 0 else axis
    return int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))


def reshape_target(shape, target, allowzero=0):
    """ONNX Reshape's output shape: 0 copies the input dimension (unless allowzero), -1 is inferred."""
    target = [int(t) for t in target]
    if not allowzero:
        target = [shape[i] if t == 0 else t for i, t in enumerate(target)]
    return np.empty(tuple(shape), np.int8).reshape(target).shape


def _slice(attrs, x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return x[tuple(index)]


def _div(attrs, a, b):
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return (np.trunc(a / b)).astype(a.dtype)
    return np.divide(a, b)


_RULES = {
    "Constant": lambda attrs: _constant(attrs),
    "Identity": lambda attrs, x: x,
    "Cast": lambda attrs, x: x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"])),
    "Add": lambda attrs, a, b: a + b,
    "Sub": lambda attrs, a, b: a - b,
    "Mul": lambda attrs, a, b: a * b,
    "Div": _div,
    "Neg": lambda attrs, x: -x,
    "Sqrt": lambda attrs, x: np.sqrt(x),
    "Reciprocal": lambda attrs, x: 1 / x,
    "MatMul": lambda attrs, a, b: np.matmul(a, b),
    "Transpose": lambda attrs, x: np.transpose(x, attrs.get("perm")),
    "Reshape": lambda attrs, x, shape: x.reshape(reshape_target(x.shape, shape, attrs.get("allowzero", 0))),
    "Flatten": _flatten,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda attrs, *xs: np.concatenate(xs, axis=attrs["axis"]),
    "Gather": lambda attrs, x, indices: np.take(x, indices, axis=attrs.get("axis", 0)),
    "Slice": _slice,
}

FOLDABLE = tuple(_RULES)


def fold(node, values):
    """The output arrays of `node` evaluated on the constant input arrays `values` (None: omitted)."""
    result = _RULES[node.op_type](attributes(node), *values)
    return [np.asarray(result)]


def initializers(graph):
    """{name: array} of the graph's initializers."""
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}

