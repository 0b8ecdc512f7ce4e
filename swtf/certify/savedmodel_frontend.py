"""SavedModel front-end: `from_saved_model(path)` reads the traced graph of a serving signature.

The signature's concrete function is frozen (variables become constants, function calls are inlined),
then the graph is walked back from the output. Sub-graphs that do not depend on the input (weights,
BatchNormalization's rsqrt(var + eps) * gamma, ...) are evaluated once as constants; ops that do depend
on it are translated to the primitive ops of `swtf.certify.network`:
  MatMul / BatchMatMulV2 (input x constant)     -> dense
  Conv2D (NHWC, no dilation)                     -> conv2d ('SAME', 'VALID' or explicit pads)
  BiasAdd, Add/AddV2/Sub/Mul/RealDiv by const    -> affine
  Add/AddV2/Sub of two input-dependent tensors   -> add (Sub as add of the negation)
  Relu -> relu;  Sigmoid -> sigmoid;  Tanh -> tanh;  Reshape -> reshape (its static output shape)
  AvgPool -> avg_pool;  MaxPool / MaxPoolV2 -> max_pool (NHWC, 'VALID', 'SAME' or explicit pads that
    equal one of them)
  Max over axes (1, 2) of an NHWC map (Keras GlobalMaxPooling2D) -> max_pool over the whole map, then
    a reshape to (C,) unless keep_dims
  Identity, IdentityN, StopGradient, Snapshot, Cast between float types -> pass through
A final Softmax is stripped (reported as `stripped_softmax`); any other op is refused by name.
"""

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from swtf.certify.network import NetworkBuilder, same_pads
from swtf.errors import SwtfError, first_line

_PASS_THROUGH = ("Identity", "IdentityN", "StopGradient", "Snapshot", "Cast")
_FLOATS = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _refuse(op, why):
    raise SwtfError(f"SavedModel op {op.type!r} ({op.name}) is not supported by the certifier: {why}")


def _attr(op, name):
    value = op.get_attr(name)
    return value.decode() if isinstance(value, bytes) else value


class _GraphReader:
    """Translates the input-dependent part of a frozen graph, evaluating the rest as constants."""

    def __init__(self, graph, placeholder):
        self.graph = graph
        self.placeholder = placeholder
        shape = placeholder.shape[1:]
        if not shape.is_fully_defined():
            raise SwtfError(f"SavedModel input {placeholder.name} has shape {placeholder.shape}; the certifier "
                            "needs a fixed per-example shape")
        self.builder = NetworkBuilder(tuple(shape.as_list()), name=placeholder.op.name)
        self._ids = {placeholder.name: 0}
        self._depends = {}
        self._session = None

    def depends_on_input(self, tensor):
        if tensor.name not in self._depends:
            self._depends[tensor.name] = tensor.name == self.placeholder.name or any(
                self.depends_on_input(t) for t in tensor.op.inputs)
        return self._depends[tensor.name]

    def constant(self, tensor):
        if tensor.op.type == "Const":
            return tf.make_ndarray(tensor.op.get_attr("value")).astype(np.float64)
        if self._session is None:
            imported = tf.Graph()
            with imported.as_default():
                tf.graph_util.import_graph_def(self.graph.as_graph_def(), name="")
            self._session = tf.compat.v1.Session(graph=imported)
        return np.asarray(self._session.run(tensor.name), dtype=np.float64)

    def node(self, tensor):
        """The node id computing `tensor`, translating its input-dependent ancestors first."""
        if tensor.name not in self._ids:
            self._ids[tensor.name] = self._translate(tensor)
        return self._ids[tensor.name]

    def _per_example(self, value, x):
        """A constant operand as broadcastable to one example's shape (drops a size-1 batch axis)."""
        shape = self.builder.shape(x)
        if value.ndim == len(shape) + 1 and value.shape[0] == 1:
            value = value[0]
        return value

    def _translate(self, tensor):
        op, b = tensor.op, self.builder
        kind = op.type
        if kind in _PASS_THROUGH:
            if kind == "Cast" and (op.get_attr("SrcT") not in _FLOATS or op.get_attr("DstT") not in _FLOATS):
                _refuse(op, "a cast to or from a non-float type")
            return self.node(op.inputs[tensor.value_index if kind == "IdentityN" else 0])
        if kind == "Relu":
            return b.relu(self.node(op.inputs[0]), op.name)
        if kind in ("Sigmoid", "Tanh"):
            return b.activation(self.node(op.inputs[0]), kind.lower(), op.name)
        if kind in ("MatMul", "BatchMatMulV2"):
            return self._matmul(op)
        if kind == "Conv2D":
            return self._conv2d(op)
        if kind in ("AvgPool", "MaxPool", "MaxPoolV2"):
            return self._pool(op)
        if kind == "Max":
            return self._global_max(op)
        if kind == "Reshape":
            shape = tensor.shape[1:]
            if not shape.is_fully_defined():
                _refuse(op, f"reshape to an unknown shape {tensor.shape}")
            return b.reshape(self.node(op.inputs[0]), shape.as_list(), op.name)
        if kind in ("BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv"):
            return self._binary(op)
        if kind == "Softmax":
            _refuse(op, "a softmax is only allowed as the last op")
        _refuse(op, "unknown op (supported: MatMul, Conv2D, BiasAdd, Add, Sub, Mul, RealDiv, Relu, Sigmoid, "
                    "Tanh, AvgPool, MaxPool, Max over axes 1 and 2, Reshape, Identity, a final Softmax)")

    def _pool(self, op):
        """AvgPool / MaxPool / MaxPoolV2 (window and strides as inputs) on NHWC maps."""
        if _attr(op, "data_format") != "NHWC":
            _refuse(op, f"data_format {_attr(op, 'data_format')!r} (only NHWC)")
        if op.type == "MaxPoolV2":
            ksize, strides = (self.constant(t).astype(np.int64).tolist() for t in op.inputs[1:3])
        else:
            ksize, strides = list(op.get_attr("ksize")), list(op.get_attr("strides"))
        if len(ksize) != 4 or len(strides) != 4 or ksize[0] != 1 or ksize[3] != 1 or strides[0] != 1 or (
                strides[3] != 1):
            _refuse(op, f"ksize {ksize} / strides {strides} pool over the batch or channel axis (only over "
                        "height and width)")
        x = self.node(op.inputs[0])
        padding = _attr(op, "padding")
        if padding == "EXPLICIT":
            padding = self._explicit_pool_padding(op, x, ksize[1:3], strides[1:3])
        if padding not in ("VALID", "SAME"):
            _refuse(op, f"padding {padding!r} (only 'VALID', 'SAME' or explicit pads equal to one of them)")
        pool = self.builder.avg_pool if op.type == "AvgPool" else self.builder.max_pool
        return pool(x, ksize[1:3], strides[1:3], padding.lower(), op.name)

    def _explicit_pool_padding(self, op, x, pool, strides):
        """'VALID' or 'SAME' for explicit pads equal to those paddings' pads; refuses any other pads."""
        flat = list(op.get_attr("explicit_paddings"))
        if len(flat) != 8 or any(flat[i] for i in (0, 1, 6, 7)):
            _refuse(op, f"explicit paddings {flat} (only of height and width)")
        pads = tuple(flat[2:6])
        h, w = self.builder.shape(x)[:2]
        if pads == (0, 0, 0, 0):
            return "VALID"
        if pads == same_pads(h, pool[0], strides[0]) + same_pads(w, pool[1], strides[1]):
            return "SAME"
        _refuse(op, f"explicit pads (top, bottom, left, right) = {pads}, which are neither 'VALID' nor TF's "
                    "'SAME' pads for this window")

    def _global_max(self, op):
        """Max over the spatial axes (1, 2) of an NHWC map, as Keras GlobalMaxPooling2D traces."""
        if self.depends_on_input(op.inputs[1]):
            _refuse(op, "the reduction axes depend on the input")
        x = self.node(op.inputs[0])
        shape = self.builder.shape(x)
        axes = sorted({int(a) % (len(shape) + 1) for a in np.ravel(self.constant(op.inputs[1]))})
        if len(shape) != 3 or axes != [1, 2]:
            _refuse(op, f"a max over axes {axes} of a tensor of per-example shape {shape} (only over axes 1 and "
                        "2 of an NHWC map, i.e. global max pooling)")
        keep = op.get_attr("keep_dims")
        y = self.builder.max_pool(x, shape[:2], (1, 1), "valid", op.name if keep else op.name + "/pool")
        return y if keep else self.builder.reshape(y, (shape[2],), op.name)

    def _matmul(self, op):
        x_tensor, w_tensor = op.inputs
        adjoint = ("transpose_a", "transpose_b") if op.type == "MatMul" else ("adj_x", "adj_y")
        if self.depends_on_input(w_tensor) or op.get_attr(adjoint[0]):
            _refuse(op, "only input @ constant matrix is supported")
        w = self.constant(w_tensor)
        if w.ndim != 2:
            _refuse(op, f"a batched weight of shape {w.shape}")
        w = w.T if op.get_attr(adjoint[1]) else w
        return self.builder.dense(self.node(x_tensor), w, np.zeros(w.shape[1]), op.name)

    def _conv2d(self, op):
        if _attr(op, "data_format") != "NHWC" or list(op.get_attr("dilations")) != [1, 1, 1, 1]:
            _refuse(op, "only NHWC convolutions without dilation are supported")
        x = self.node(op.inputs[0])
        if self.depends_on_input(op.inputs[1]):
            _refuse(op, "the kernel depends on the input")
        kernel = self.constant(op.inputs[1])
        strides = op.get_attr("strides")[1:3]
        padding = _attr(op, "padding")
        h, w = self.builder.shape(x)[:2]
        if padding == "SAME":
            pads = same_pads(h, kernel.shape[0], strides[0]) + same_pads(w, kernel.shape[1], strides[1])
        elif padding == "EXPLICIT":
            pads = tuple(op.get_attr("explicit_paddings")[2:6])
        else:
            pads = (0, 0, 0, 0)
        return self.builder.conv2d(x, kernel, np.zeros(kernel.shape[3]), strides, pads, op.name)

    def _binary(self, op):
        """x + c, x - c, c - x, x * c, x / c as affine nodes; x + y, x - y as additions."""
        left, right = op.inputs
        data = [self.depends_on_input(t) for t in (left, right)]
        kind, b = op.type, self.builder
        if all(data):
            x, y = self.node(left), self.node(right)
            if kind == "Sub":
                y = b.affine(y, np.float64(-1.0), np.float64(0.0), op.name + "/negate")
            elif kind not in ("Add", "AddV2"):
                _refuse(op, "a product or quotient of two input-dependent tensors")
            return b.add(x, y, op.name)
        if not data[0] and kind in ("BiasAdd", "RealDiv"):
            _refuse(op, "the input must be the first operand")
        x = self.node(left if data[0] else right)
        c = self._per_example(self.constant(right if data[0] else left), x)
        one, zero = np.ones_like(c), np.zeros_like(c)
        if kind == "Mul":
            return b.affine(x, c, zero, op.name)
        if kind == "RealDiv":
            if np.any(c == 0):
                _refuse(op, "division by zero")
            return b.affine(x, one / c, zero, op.name)
        if kind == "Sub":
            return b.affine(x, one, -c, op.name) if data[0] else b.affine(x, -one, c, op.name)
        return b.affine(x, one, c, op.name)


def _signature(loaded, path):
    names = list(loaded.signatures.keys())
    for name in ("serving_default", "serve"):
        if name in names:
            return loaded.signatures[name]
    if len(names) == 1:
        return loaded.signatures[names[0]]
    raise SwtfError(f"SavedModel {path} has signatures {names}; expected 'serving_default'")


def from_saved_model(path):
    """Translates the serving signature of the SavedModel at `path` into a `Network`.

    Uses signature 'serving_default' (else 'serve', else the only one), its single input, and its
    output 'logits' (or its only output).

    Raises:
      SwtfError: naming the first op that cannot be translated exactly.
    """
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as err:
        raise SwtfError(f"cannot load a SavedModel from {path}: {first_line(err)}") from None
    function = _signature(loaded, path)
    frozen = convert_variables_to_constants_v2(function)
    if len(frozen.inputs) != 1:
        raise SwtfError(f"SavedModel {path} signature takes {len(frozen.inputs)} inputs; the certifier needs one")
    output_names = sorted(function.structured_outputs)
    if "logits" in output_names:
        output = frozen.outputs[output_names.index("logits")]
    elif len(output_names) == 1:
        output = frozen.outputs[0]
    else:
        raise SwtfError(f"SavedModel {path} has outputs {output_names}; name the logits output 'logits'")
    reader = _GraphReader(frozen.graph, frozen.inputs[0])
    stripped = False
    while output.op.type in ("Identity", "Softmax"):
        stripped = stripped or output.op.type == "Softmax"
        output = output.op.inputs[0]
    last = reader.node(output)
    builder = reader.builder
    if last != len(builder) - 1:
        last = builder.reshape(last, builder.shape(last), "output")
    if len(builder.shape(last)) != 1:
        raise SwtfError(f"SavedModel {path} outputs shape {builder.shape(last)}; the certifier needs a vector")
    return builder.build(last, stripped_softmax=stripped)
