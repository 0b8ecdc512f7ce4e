"""TensorFlow rules for the affine primitives of a `Network`: the linear map and its transpose.

Every affine op y = L(x) + bias is given by two functions on batched tensors (leading axis B):
  linear(params, *xs)            -> L(x), without the bias;
  transpose(params, a, shapes)   -> L^T(a), one tensor per input, the adjoint used by backward
                                    bound propagation (<a, L(x)> = <L^T(a), x>).
The bias (or shift) is kept apart in `TensorNode.bias`, broadcastable to the output shape. Interval
propagation reuses `linear` with `TensorNode.abs_params` (|W|, |scale|) to map radii.

`tensor_nodes(network, dtype)` holds the weights as constants (the float64 certification path); with
`live=True` the weights a front-end read from variables are those variables, read at every call, so
bounds follow training and their gradients reach the weights (certified training).

Adding an affine op means adding one entry to `LINEAR_RULES`; the methods' drivers do not change.
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf

from swtf.certify.network import tf_pool_args
from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.errors import SwtfError

LinearRule = collections.namedtuple("LinearRule", "linear transpose")


def _batch(a):
    return tf.shape(a)[0]


def _dense_linear(p, x):
    return tf.tensordot(x, p["kernel"], axes=[[x.shape.rank - 1], [0]])


def _dense_transpose(p, a, shapes):
    return [tf.tensordot(a, p["kernel"], axes=[[a.shape.rank - 1], [1]])]


def _conv_linear(p, x):
    top, bottom, left, right = p["pads"]
    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return tf.nn.conv2d(x, p["kernel"], strides=p["strides"], padding="VALID")


def _conv_transpose(p, a, shapes):
    """Adjoint of zero-padding then 'VALID' convolution: transposed convolution, then crop the pads."""
    (h, w, c), = shapes
    top, bottom, left, right = p["pads"]
    padded = tf.nn.conv2d_transpose(a, p["kernel"], output_shape=[_batch(a), h + top + bottom,
                                                                   w + left + right, c],
                                    strides=p["strides"], padding="VALID")
    return [padded[:, top:top + h, left:left + w, :]]


def _reshape_linear(p, x):
    return tf.reshape(x, tf.concat([[_batch(x)], p["shape"]], 0))


def _reshape_transpose(p, a, shapes):
    return [tf.reshape(a, tf.concat([[_batch(a)], shapes[0]], 0))]


def _affine_linear(p, x):
    return x * p["scale"]


def _affine_transpose(p, a, shapes):
    return [a * p["scale"]]


def _avg_pool_linear(p, x):
    return tf.nn.avg_pool2d(x, **tf_pool_args(p))


def _avg_pool_transpose(p, a, shapes):
    """TF's own gradient of average pooling, which divides by the same in-bounds counts as the forward."""
    return [tf.raw_ops.AvgPoolGrad(orig_input_shape=tf.concat([[_batch(a)], shapes[0]], 0), grad=a,
                                   **tf_pool_args(p))]


def _add_linear(p, x, y):
    return x + y


def _add_transpose(p, a, shapes):
    return [a, a]


LINEAR_RULES = {
    "dense": LinearRule(_dense_linear, _dense_transpose),
    "conv2d": LinearRule(_conv_linear, _conv_transpose),
    "reshape": LinearRule(_reshape_linear, _reshape_transpose),
    "affine": LinearRule(_affine_linear, _affine_transpose),
    "avg_pool": LinearRule(_avg_pool_linear, _avg_pool_transpose),
    "add": LinearRule(_add_linear, _add_transpose),
}


@dataclasses.dataclass(frozen=True, eq=False)
class TensorNode:
    """A `Node` with its weights as TF constants of one dtype, ready for the methods' rules."""

    op: str
    inputs: tuple
    shape: tuple
    input_shapes: tuple
    params: dict
    weight_keys: tuple  # the params that are tensors (the others are ints and shapes)
    bias: object  # tf.Tensor or variable broadcastable to (B, *shape), or None

    @property
    def abs_params(self):
        """The params with every weight replaced by its absolute value (read now, for live weights)."""
        return {**self.params, **{k: tf.abs(self.params[k]) for k in self.weight_keys}}

    @property
    def is_linear(self):
        return self.op in LINEAR_RULES

    def linear(self, *xs):
        return LINEAR_RULES[self.op].linear(self.params, *xs)

    def abs_linear(self, *xs):
        return LINEAR_RULES[self.op].linear(self.abs_params, *xs)

    def apply(self, *xs):
        y = self.linear(*xs)
        return y if self.bias is None else y + self.bias

    def transpose(self, a):
        return LINEAR_RULES[self.op].transpose(self.params, a, self.input_shapes)


def _weight(node, key, dtype, live):
    """Param `key` of `node`: its live source variable (if `live` and it has one), else a constant."""
    value = node.params[key]
    if not isinstance(value, np.ndarray):
        return value
    source = node.sources.get(key) if live else None
    if source is None:
        return tf.constant(value, dtype)
    if tf.as_dtype(source.dtype) != dtype:
        raise SwtfError(f"layer {node.name!r}: live {key} is {tf.as_dtype(source.dtype).name}, bounds were "
                        f"asked in {dtype.name}; bound live weights in their own dtype")
    return source


def tensor_nodes(network, dtype, live=False):
    """The network's nodes as `TensorNode`s of `dtype` (tf.float64 or tf.float32).

    With `live`, weights that have a source variable (`Node.sources`) are that variable rather than a
    constant copy; the variable's dtype must be `dtype`.
    """
    nodes = []
    for node in network.nodes:
        params = {k: _weight(node, k, dtype, live) for k in node.params if k not in ("bias", "shift")}
        bias_key = next((k for k in ("bias", "shift") if k in node.params), None)
        nodes.append(TensorNode(
            op=node.op, inputs=node.inputs, shape=node.shape,
            input_shapes=tuple(network.nodes[i].shape for i in node.inputs), params=params,
            weight_keys=tuple(k for k in params if isinstance(node.params[k], np.ndarray)),
            bias=None if bias_key is None else _weight(node, bias_key, dtype, live)))
    return nodes


def network_function(network, dtype):
    """x (B, *input_shape) -> output (B, *output_shape): the network evaluated with TF ops in `dtype`."""
    nodes = tensor_nodes(network, dtype)

    def apply(x):
        values = [x]
        for node in nodes[1:]:
            parents = [values[i] for i in node.inputs]
            values.append(NONLINEAR_RULES[node.op].apply(node.params, *parents) if node.op in NONLINEAR_RULES
                          else node.apply(*parents))
        return values[-1]

    return apply
