"""The certifier's network representation: an ordered graph of primitive ops with float64 weights.

Every front-end (Keras, SavedModel, ONNX) translates a model into a `Network`, and every method (IBP,
CROWN, alpha-CROWN, MILP) reads only a `Network`, so each front-end and each method is written and tested
once.

A `Network` is a list of `Node`s in topological order: node 0 is the input, every other node names the
ids of the earlier nodes it reads, and the last node is the output (the logits). Each node carries the
per-sample shape of its value (no batch axis, images as (H, W, C)). The primitive ops and their params:

  input     -                                       the perturbed input, shape `input_shape`.
  dense     W (in, out), b (out,)                   y = x @ W + b over the last axis of x.
  conv2d    kernel (kh, kw, cin, cout) (HWIO),      y = cross-correlation of x zero-padded by `pads`,
            bias (cout,), strides (sh, sw),         plus bias. `pads` are explicit; `same_pads` gives
            pads (top, bottom, left, right)         TF's 'same' rule (the odd extra row/col goes
                                                    bottom/right), 'valid' is (0, 0, 0, 0).
  relu      -                                       y = max(x, 0).
  sigmoid   -                                       y = 1 / (1 + exp(-x)).
  tanh      -                                       y = tanh(x).
  max_pool  pool (ph, pw), strides (sh, sw),        TF max pooling: each output is the largest
            padding 'valid' | 'same'                in-bounds element of its window ('same' pads by
                                                    `same_pads`; padded positions never win, as in
                                                    TF). Global max pooling is a max_pool whose
                                                    window is the whole map, then a reshape.
  reshape   shape (per-sample target shape)         row-major reshape, so flattening (H, W, C) gives
                                                    Keras' Flatten order.
  affine    scale, shift (broadcastable to x)       y = x * scale + shift, elementwise: Keras
                                                    Normalization, inference-mode BatchNormalization,
                                                    Rescaling.
  avg_pool  pool (ph, pw), strides (sh, sw),        TF average pooling: each output is the mean of the
            padding 'valid' | 'same'                in-bounds window elements ('same' pads by
                                                    `same_pads` and divides by the number of
                                                    non-padded elements, as TF does).
  add       - (two inputs)                          y = a + b (residual connections).

Weights are NumPy float64 arrays converted exactly from the model's float32 weights; `forward` is the
plain NumPy float64 reference evaluation used to check front-ends and methods. A node may also name the
framework variables its weights were copied from (`Node.sources`, filled by the Keras front-end for dense
and conv2d), so that certified training can bound the network with the live, trainable weights.
"""

import dataclasses
import math

import numpy as np

from swtf.errors import SwtfError

OPS = ("input", "dense", "conv2d", "relu", "sigmoid", "tanh", "max_pool", "reshape", "affine", "avg_pool", "add")
LINEAR_OPS = ("dense", "conv2d", "reshape", "affine", "avg_pool", "add")
# Elementwise nonlinear ops (every method bounds each with a linear relaxation per neuron).
ACTIVATIONS = ("relu", "sigmoid", "tanh")
NONLINEAR_OPS = ACTIVATIONS + ("max_pool",)


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """One primitive op: `op` applied to the values of nodes `inputs`, giving a value of `shape`.

    `sources` maps param names to the variables (e.g. Keras) the float64 copies in `params` were read
    from; it is empty when the weights have no live source.
    """

    op: str
    inputs: tuple
    params: dict
    shape: tuple
    name: str
    sources: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Network:
    """A topologically ordered graph of `Node`s; node 0 is the input and the last node the output.

    Attributes:
      nodes: the nodes, each reading only earlier nodes.
      stripped_softmax: True if the front-end removed a final softmax, so the output is the logits
        that the softmax would have normalised (certifying the argmax of either is the same).
    """

    nodes: list
    stripped_softmax: bool = False

    @property
    def input_shape(self):
        return self.nodes[0].shape

    @property
    def output_id(self):
        return len(self.nodes) - 1

    @property
    def output_size(self):
        return math.prod(self.nodes[-1].shape)

    @property
    def nonlinear_count(self):
        """Number of neurons of nonlinear ops (activations and max pooling outputs): the network's size
        as far as the cost of bounding it goes."""
        return sum(math.prod(node.shape) for node in self.nodes if node.op in NONLINEAR_OPS)

    def consumers(self):
        """For each node id, the ids of the nodes that read it."""
        readers = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            for j in node.inputs:
                readers[j].append(i)
        return readers

    def summary(self):
        """One line per node: id, op, inputs, shape and name."""
        return "\n".join(f"{i:3d} {n.op:9s} {list(n.inputs)!s:10s} {n.shape!s:16s} {n.name}"
                         for i, n in enumerate(self.nodes))


def same_pads(size, kernel, stride):
    """TF's 'same' padding for one spatial axis: (before, after), the odd extra element after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_pool_args(params):
    """The keyword arguments of TF's pooling ops (ksize, strides, padding) for a pooling node's params."""
    return dict(ksize=[1, *params["pool"], 1], strides=[1, *params["strides"], 1], padding=params["padding"].upper())


def conv_output_size(size, kernel, stride, pad_before, pad_after):
    return (size + pad_before + pad_after - kernel) // stride + 1


def pool_pads(node_params, in_shape):
    """(top, bottom, left, right) padding of a pooling node with `node_params` on an input of `in_shape`."""
    (ph, pw), (sh, sw) = node_params["pool"], node_params["strides"]
    if node_params["padding"] == "same":
        return same_pads(in_shape[0], ph, sh) + same_pads(in_shape[1], pw, sw)
    return (0, 0, 0, 0)


def _finite(name, **arrays):
    for key, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise SwtfError(f"layer {name!r} has NaN or infinite {key}; retrain or repair the model")


class NetworkBuilder:
    """Appends nodes one at a time, checking params and inferring shapes; `build()` gives the Network."""

    def __init__(self, input_shape, name="input"):
        self._nodes = [Node("input", (), {}, tuple(int(d) for d in input_shape), name)]

    def __len__(self):
        return len(self._nodes)

    def shape(self, node_id):
        return self._nodes[node_id].shape

    def dense(self, x, kernel, bias, name, sources=None):
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        _finite(name, kernel=kernel, bias=bias)
        in_shape = self.shape(x)
        if kernel.ndim != 2 or kernel.shape[0] != in_shape[-1] or bias.shape != (kernel.shape[1],):
            raise SwtfError(f"layer {name!r}: dense kernel {kernel.shape} / bias {bias.shape} do not fit "
                            f"input shape {in_shape}")
        return self._add("dense", (x,), {"kernel": kernel, "bias": bias}, in_shape[:-1] + (kernel.shape[1],), name,
                         sources)

    def conv2d(self, x, kernel, bias, strides, pads, name, sources=None):
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        _finite(name, kernel=kernel, bias=bias)
        in_shape = self.shape(x)
        if len(in_shape) != 3 or kernel.ndim != 4 or kernel.shape[2] != in_shape[2] or bias.shape != (
                kernel.shape[3],):
            raise SwtfError(f"layer {name!r}: conv kernel {kernel.shape} / bias {bias.shape} do not fit "
                            f"input shape {in_shape}")
        strides, pads = tuple(int(s) for s in strides), tuple(int(p) for p in pads)
        out_h = conv_output_size(in_shape[0], kernel.shape[0], strides[0], pads[0], pads[1])
        out_w = conv_output_size(in_shape[1], kernel.shape[1], strides[1], pads[2], pads[3])
        if out_h < 1 or out_w < 1:
            raise SwtfError(f"layer {name!r}: kernel {kernel.shape[:2]} does not fit input {in_shape[:2]}")
        params = {"kernel": kernel, "bias": bias, "strides": strides, "pads": pads}
        return self._add("conv2d", (x,), params, (out_h, out_w, kernel.shape[3]), name, sources)

    def relu(self, x, name):
        return self._add("relu", (x,), {}, self.shape(x), name)

    def activation(self, x, op, name):
        """An elementwise activation node: `op` is one of ACTIVATIONS."""
        if op not in ACTIVATIONS:
            raise SwtfError(f"layer {name!r}: activation {op!r} is not one of {', '.join(ACTIVATIONS)}")
        return self._add(op, (x,), {}, self.shape(x), name)

    def reshape(self, x, shape, name):
        shape = tuple(int(d) for d in shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            shape = tuple(math.prod(self.shape(x)) // known if d == -1 else d for d in shape)
        if math.prod(shape) != math.prod(self.shape(x)):
            raise SwtfError(f"layer {name!r}: cannot reshape {self.shape(x)} to {shape}")
        return self._add("reshape", (x,), {"shape": shape}, shape, name)

    def affine(self, x, scale, shift, name):
        scale, shift = np.asarray(scale, np.float64), np.asarray(shift, np.float64)
        _finite(name, scale=scale, shift=shift)
        in_shape = self.shape(x)
        if np.broadcast_shapes(in_shape, scale.shape, shift.shape) != in_shape:
            raise SwtfError(f"layer {name!r}: scale {scale.shape} / shift {shift.shape} do not broadcast "
                            f"to input shape {in_shape}")
        return self._add("affine", (x,), {"scale": scale, "shift": shift}, in_shape, name)

    def avg_pool(self, x, pool, strides, padding, name):
        return self._pool("avg_pool", x, pool, strides, padding, name)

    def max_pool(self, x, pool, strides, padding, name):
        return self._pool("max_pool", x, pool, strides, padding, name)

    def _pool(self, op, x, pool, strides, padding, name):
        in_shape = self.shape(x)
        params = {"pool": tuple(int(p) for p in pool), "strides": tuple(int(s) for s in strides),
                  "padding": padding}
        if len(in_shape) != 3 or padding not in ("valid", "same"):
            raise SwtfError(f"layer {name!r}: pooling needs an (H, W, C) input and 'valid' or 'same' padding, "
                            f"got {in_shape} and {padding!r}")
        if min(params["pool"] + params["strides"]) < 1:
            raise SwtfError(f"layer {name!r}: pool {params['pool']} and strides {params['strides']} must be >= 1")
        pads = pool_pads(params, in_shape)
        out_h = conv_output_size(in_shape[0], params["pool"][0], params["strides"][0], pads[0], pads[1])
        out_w = conv_output_size(in_shape[1], params["pool"][1], params["strides"][1], pads[2], pads[3])
        if out_h < 1 or out_w < 1:
            raise SwtfError(f"layer {name!r}: pool {params['pool']} does not fit input {in_shape[:2]}")
        return self._add(op, (x,), params, (out_h, out_w, in_shape[2]), name)

    def add(self, a, b, name):
        if self.shape(a) != self.shape(b):
            raise SwtfError(f"layer {name!r}: cannot add shapes {self.shape(a)} and {self.shape(b)}")
        return self._add("add", (a, b), {}, self.shape(a), name)

    def build(self, output, stripped_softmax=False):
        """The Network computing node `output` (which must be the last node added)."""
        if output != len(self._nodes) - 1:
            raise SwtfError("the network output must be the last node added")
        return Network(list(self._nodes), stripped_softmax=stripped_softmax)

    def _add(self, op, inputs, params, shape, name, sources=None):
        self._nodes.append(Node(op, tuple(inputs), params, tuple(shape), name, dict(sources or {})))
        return len(self._nodes) - 1


def _conv_numpy(x, kernel, strides, pads, bias=None):
    """Cross-correlation of NHWC `x` with HWIO `kernel` after zero padding `pads`."""
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::strides[0], ::strides[1]]  # (N, OH, OW, C, kh, kw)
    out = np.einsum("nhwcij,ijco->nhwo", windows, kernel)
    return out if bias is None else out + bias


def _avg_pool_numpy(params, x):
    pads = pool_pads(params, x.shape[1:])
    channels = x.shape[-1]
    ones = np.ones(params["pool"] + (1, 1))
    sums = np.concatenate([_conv_numpy(x[..., c:c + 1], ones, params["strides"], pads)
                           for c in range(channels)], axis=-1)
    counts = _conv_numpy(np.ones((1,) + x.shape[1:3] + (1,)), ones, params["strides"], pads)
    return sums / counts


def pool_windows(params, x, fill):
    """(N, OH, OW, C, ph * pw) windows of NHWC `x` under the pooling `params`, padded positions `fill`."""
    top, bottom, left, right = pool_pads(params, x.shape[1:])
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(x, params["pool"], axis=(1, 2))
    windows = windows[:, ::params["strides"][0], ::params["strides"][1]]
    return windows.reshape(windows.shape[:4] + (-1,))


_NUMPY_RULES = {
    "dense": lambda p, x: x @ p["kernel"] + p["bias"],
    "conv2d": lambda p, x: _conv_numpy(x, p["kernel"], p["strides"], p["pads"], p["bias"]),
    "relu": lambda p, x: np.maximum(x, 0.0),
    "sigmoid": lambda p, x: np.exp(-np.logaddexp(0.0, -x)),
    "tanh": lambda p, x: np.tanh(x),
    "max_pool": lambda p, x: pool_windows(p, x, -np.inf).max(axis=-1),
    "reshape": lambda p, x: x.reshape((x.shape[0],) + p["shape"]),
    "affine": lambda p, x: x * p["scale"] + p["shift"],
    "avg_pool": _avg_pool_numpy,
    "add": lambda p, a, b: a + b,
}


def forward(network, x, return_all=False):
    """Reference float64 NumPy evaluation of `network` on a batch `x` of shape (N, *input_shape).

    Returns the output (N, *output_shape), or with `return_all` the list of every node's value.
    """
    values = [np.asarray(x, np.float64).reshape((-1,) + network.input_shape)]
    for node in network.nodes[1:]:
        values.append(_NUMPY_RULES[node.op](node.params, *(values[i] for i in node.inputs)))
    return values if return_all else values[-1]
