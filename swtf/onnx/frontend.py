"""ONNX front-end: `from_onnx(path)` translates an ONNX model into a certifier `Network`.

The graph's nodes are visited in their (topological) order, keeping only those the output depends on.
A node whose inputs are all constants (initializers, Constant nodes, the Shape of a tensor) is folded
with NumPy (`constants`); a node that depends on the input is translated by its rule in `ops.RULES`
into primitive ops; any other op is refused with one line naming the node.

Element order: see `layout`. The network input is stored in (H, W, C) order for a (1, C, H, W) ONNX
input, else flat; when a convolution needs its input in another order that the input could have been
given (only layout and elementwise ops in between, e.g. an NHWC model that transposes to NCHW first),
the translation restarts once with the input in that order. `OnnxNetwork.input_perm` and
`output_perm` give the orders, so callers map ONNX values (VNN-LIB's X_i, Y_j) exactly.

At load, the network is evaluated on random points of the input box and compared with onnxruntime; a
mismatch beyond `CHECK_TOL` (relative to the output scale) is refused, naming the first node whose
value differs.
"""

import dataclasses
import os

import numpy as np
import onnx

from swtf.certify.network import NetworkBuilder, forward
from swtf.errors import SwtfError
from swtf.onnx import layout, ops
from swtf.onnx.constants import FOLDABLE, attributes, fold, initializers
from swtf.onnx.runtime import Session, static_shape, with_outputs

CHECK_TOL = 1e-4
CHECK_SAMPLES = 8


def describe(node):
    return f"ONNX node {node.name or node.output[0]!r} ({node.op_type})"


class _Relayout(Exception):
    """Restart with the network input in order `perm` and node shape `shape`."""

    def __init__(self, perm, shape):
        super().__init__()
        self.perm, self.shape = perm, shape


class Translator:
    """The state of one translation: the builder, translated tensors and folded constants."""

    def __init__(self, input_name, input_shape, input_perm, node_shape, constants, may_relayout, used=()):
        self.used = frozenset(used)  # the tensors that the output depends on (read by a needed node)
        self.builder = NetworkBuilder(node_shape, name=input_name)
        self.data = {input_name: layout.Tensor(0, tuple(input_shape), input_perm, pure=True)}
        self.constants = dict(constants)
        self.producers = {}
        self._input_perm = input_perm
        self._may_relayout = may_relayout
        self._reshaped = {}
        self.current = None

    def refuse(self, node, why):
        raise SwtfError(f"{describe(node)} is not supported by the certifier: {why}")

    def is_data(self, name):
        return name in self.data

    def tensor(self, name):
        return self.data[name]

    def const(self, name):
        if name not in self.constants:
            self.refuse(self.current, f"operand {name!r} depends on the input where a constant is needed")
        return self.constants[name]

    def reshaped(self, node_id, shape):
        """`node_id` as a node of `shape` (a row-major reshape, added once)."""
        shape = tuple(shape)
        if self.builder.shape(node_id) == shape:
            return node_id
        key = (node_id, shape)
        if key not in self._reshaped:
            name = (self.current.name or self.current.output[0]) + "/reshape"
            self._reshaped[key] = self.builder.reshape(node_id, shape, name)
        return self._reshaped[key]

    def flat(self, tensor):
        return self.reshaped(tensor.node, (tensor.size,))

    def hwc(self, tensor, node, want=None, shape=None):
        """The node holding `tensor` (1, C, H, W) as (H, W, C), restarting with a new input order if needed.

        `want` and `shape` ask for another order instead: the node holds ONNX elements `want` (a perm) with
        node shape `shape` (e.g. an NHWC tensor's own order as (H, W, C)).
        """
        if want is None:
            want, shape = layout.hwc_perm(tensor.shape), layout.hwc_shape(tensor.shape)
        if np.array_equal(tensor.perm, want):
            return self.reshaped(tensor.node, shape)
        if tensor.pure and self._may_relayout:
            through = tensor.perm[np.argsort(self._input_perm)]  # the order the input order is mapped to
            raise _Relayout(np.argsort(through)[want], shape)
        self.refuse(node, "its input is in an element order that only a general permutation would give")

    def visit(self, node):
        self.current = node
        inputs = [name for name in node.input if name]
        if node.op_type == "Shape" and inputs and self.is_data(inputs[0]):
            shape = np.asarray(self.tensor(inputs[0]).shape, np.int64)
            attrs = attributes(node)
            self.constants[node.output[0]] = shape[attrs.get("start", 0):attrs.get("end", len(shape))]
        elif not any(self.is_data(name) for name in inputs):
            if node.op_type not in FOLDABLE:
                self.refuse(node, f"constant op outside the folding table ({', '.join(FOLDABLE)})")
            values = [self.constants[name] if name else None for name in node.input]
            for name, value in zip(node.output, fold(node, values)):
                self.constants[name] = value
        elif node.op_type in ops.RULES:
            self.data[node.output[0]] = ops.RULES[node.op_type](self, node, attributes(node))
            self.producers[node.output[0]] = node
        else:
            self.refuse(node, f"unknown op (supported: {', '.join(sorted(ops.RULES))}, Constant and constant "
                              "sub-graphs)")


def _needed(graph, output_name):
    """The nodes the output depends on, in graph order."""
    producer = {name: node for node in graph.node for name in node.output}
    needed, stack = set(), [output_name]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(name for name in node.input if name)
    return [node for node in graph.node if id(node) in needed]


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxNetwork:
    """A translated ONNX model: the `Network` and how its values map to the ONNX tensors.

    `input_perm` / `output_perm`: network flat index k holds ONNX flat element perm[k] of the input /
    output (row-major over the ONNX shape, the order of VNN-LIB's X_i and Y_j).
    """

    network: object
    model: object
    input_name: str
    input_shape: tuple
    input_perm: np.ndarray
    output_name: str
    output_shape: tuple
    output_perm: np.ndarray
    session: object
    tensors: dict  # ONNX tensor name -> layout.Tensor, for locating mismatches
    producers: dict  # ONNX tensor name -> the node computing it

    @property
    def input_size(self):
        return len(self.input_perm)

    @property
    def output_size(self):
        return len(self.output_perm)

    def to_network(self, x):
        """ONNX-order flat inputs (N, input_size) as network inputs (N, *network.input_shape)."""
        x = np.asarray(x, np.float64).reshape(-1, self.input_size)
        return x[:, self.input_perm].reshape((-1,) + self.network.input_shape)

    def from_network(self, x):
        """Network inputs (N, *network.input_shape) as ONNX-order flat inputs (N, input_size)."""
        x = np.asarray(x).reshape(len(x), -1)
        out = np.empty_like(x)
        out[:, self.input_perm] = x
        return out

    def output_rows(self, matrix):
        """Rows over the ONNX outputs (S, output_size) as rows over the network output (S, *shape)."""
        matrix = np.asarray(matrix, np.float64).reshape(-1, self.output_size)
        return matrix[:, self.output_perm].reshape((-1,) + self.network.nodes[-1].shape)

    def network_outputs(self, x):
        """The network's float64 outputs in ONNX order (N, output_size) for ONNX-order inputs x."""
        return _onnx_order(forward(self.network, self.to_network(x)), self.output_perm)

    def runtime_outputs(self, x):
        """onnxruntime's outputs (N, output_size), float64, for ONNX-order inputs x (run in float32)."""
        return self.session.run(x)[0]


def _onnx_order(values, perm):
    values = np.asarray(values).reshape(len(values), -1)
    out = np.empty_like(values)
    out[:, perm] = values
    return out


def _load(source):
    if isinstance(source, onnx.ModelProto):
        return source
    try:
        if isinstance(source, bytes):
            return onnx.load_from_string(source)
        return onnx.load(os.fspath(source))
    except OSError as err:
        raise SwtfError(f"cannot read an ONNX model from {source}: {err.strerror}") from None
    except Exception as err:  # protobuf's DecodeError and onnx's own errors
        raise SwtfError(f"cannot read an ONNX model from {source}: {type(err).__name__}") from None


def _graph_input(graph, constants):
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise SwtfError(f"the ONNX graph has {len(inputs)} inputs and {len(graph.output)} outputs; the certifier "
                        "needs exactly one of each")
    if inputs[0].type.tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise SwtfError(f"ONNX input {inputs[0].name!r} is not a float tensor")
    return inputs[0]


def _translate(graph, constants, input_name, input_shape, perm, node_shape, may_relayout):
    output_name = graph.output[0].name
    needed = _needed(graph, output_name)
    used = {name for node in needed for name in node.input if name} | {output_name}
    tr = Translator(input_name, input_shape, perm, node_shape, constants, may_relayout, used)
    for node in needed:
        tr.visit(node)
    if not tr.is_data(output_name):
        raise SwtfError(f"ONNX output {output_name!r} does not depend on the input")
    out = tr.tensor(output_name)
    last = out.node
    if last != len(tr.builder) - 1 or last == 0:
        last = tr.builder.reshape(last, tr.builder.shape(last), "output")
    return tr, tr.builder.build(last), out


def from_onnx(source, lower=None, upper=None, *, samples=CHECK_SAMPLES, seed=0):
    """Translates an ONNX model (path, bytes or ModelProto) into an `OnnxNetwork`, checked against onnxruntime.

    Args:
      source: the model.
      lower, upper: the input box (ONNX flat order) the check samples from; default standard normal points.
      samples: number of random check points.
      seed: seed of the check points.

    Raises:
      SwtfError: one line naming the first unsupported node, or the node where the network and
        onnxruntime disagree.
    """
    model = _load(source)
    graph = model.graph
    constants = initializers(graph)
    graph_input = _graph_input(graph, constants)
    input_shape = static_shape(graph_input, "input")
    if len(input_shape) == 4 and input_shape[0] == 1:
        perm, node_shape = layout.hwc_perm(input_shape), layout.hwc_shape(input_shape)
    else:
        perm = layout.identity(int(np.prod(input_shape)))
        node_shape = (len(perm),)
    try:
        tr, network, out = _translate(graph, constants, graph_input.name, input_shape, perm, node_shape, True)
    except _Relayout as relayout:
        perm = relayout.perm
        tr, network, out = _translate(graph, constants, graph_input.name, input_shape, perm, relayout.shape, False)
    result = OnnxNetwork(network=network, model=model, input_name=graph_input.name, input_shape=input_shape,
                         input_perm=perm, output_name=graph.output[0].name, output_shape=out.shape,
                         output_perm=out.perm, session=Session(model, graph_input.name, input_shape),
                         tensors=dict(tr.data), producers=dict(tr.producers))
    check_against_runtime(result, lower, upper, samples=samples, seed=seed)
    return result


def sample_box(lower, upper, size, samples, seed):
    """`samples` points (ONNX order): the box centre and uniform points of [lower, upper] (normal if None)."""
    rng = np.random.default_rng(seed)
    if lower is None:
        return rng.standard_normal((samples, size))
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    points = lower + (upper - lower) * rng.random((samples, size))
    points[0] = (lower + upper) / 2
    return points


def check_against_runtime(net, lower=None, upper=None, *, samples=CHECK_SAMPLES, seed=0):
    """Max |network - onnxruntime| on random points of the box; raises SwtfError beyond CHECK_TOL."""
    x = sample_box(lower, upper, net.input_size, samples, seed).astype(np.float32).astype(np.float64)
    reference = net.runtime_outputs(x)
    gap = float(np.max(np.abs(net.network_outputs(x) - reference)))
    if not gap <= CHECK_TOL * max(1.0, float(np.max(np.abs(reference)))):
        raise SwtfError(f"{_first_mismatch(net, x)} gives a different value in the certifier than in "
                        f"onnxruntime (max |diff| {gap:.3g} at the output); not imported")
    return gap


def _first_mismatch(net, x):
    """A description of the first translated node whose value differs from onnxruntime's."""
    names = [name for name in net.producers]
    elem_type = onnx.TensorProto.DOUBLE if net.session.input_dtype == np.float64 else onnx.TensorProto.FLOAT
    session = Session(with_outputs(net.model, names, elem_type), net.input_name, net.input_shape, names)
    reference = session.run(x)
    values = forward(net.network, net.to_network(x), return_all=True)
    for name, expected in zip(names, reference):
        tensor = net.tensors[name]
        actual = _onnx_order(values[tensor.node], tensor.perm)
        if not np.max(np.abs(actual - expected)) <= CHECK_TOL * max(1.0, float(np.max(np.abs(expected)))):
            return describe(net.producers[name])
    return f"the ONNX output {net.output_name!r}"
