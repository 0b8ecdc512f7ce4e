"""How an ONNX tensor lives in a `Network` node: a node id plus a permutation of its elements.

ONNX convolutions are NCHW and the certifier's are HWC, so a translated tensor's elements may sit in a
different order in its network node than in ONNX. `Tensor.perm` records that order exactly:

    network_value.ravel()[k] == onnx_value.ravel()[perm[k]]      (row-major, whole tensor)

ONNX shapes are whole tensors, batch axis included (the batch is fixed to 1), and a network node holds
one such tensor per sample. Layout ops then cost nothing: Flatten / Reshape / Squeeze / Unsqueeze keep
`perm` (a row-major reshape keeps the flat order) and Transpose only re-indexes it; elementwise ops
work in any order, their constants are permuted into it (`network_constant`); a dense layer permutes
its kernel rows; a convolution needs the HWC order `hwc_perm`.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Tensor:
    """An input-dependent ONNX tensor: network node `node` holds its elements in `perm` order.

    `pure` is True while the tensor depends on the input through elementwise and layout ops only, so
    that choosing another input order can give it any order (see `frontend`).
    """

    node: int
    shape: tuple
    perm: np.ndarray
    pure: bool = False

    @property
    def size(self):
        return math.prod(self.shape)


def identity(size):
    return np.arange(size)


def hwc_perm(shape):
    """The perm of an NCHW tensor `shape` = (1, C, H, W) stored as (H, W, C)."""
    _, channels, height, width = shape
    return np.arange(math.prod(shape)).reshape(channels, height, width).transpose(1, 2, 0).ravel()


def hwc_shape(shape):
    _, channels, height, width = shape
    return (height, width, channels)


def transposed_perm(perm, shape, axes):
    """`perm` after an ONNX Transpose of a tensor of `shape` by `axes`.

    The transpose reads source[i] = flat index of its i-th output element in the input; the network node
    is unchanged, so its k-th element is now output element inverse(source)[perm[k]].
    """
    source = np.arange(math.prod(shape)).reshape(shape).transpose(axes).ravel()
    return np.argsort(source)[perm]


def network_constant(value, tensor, node_shape):
    """ONNX constant `value`, broadcast against `tensor`, in the node's order and `node_shape`.

    A constant that is the same everywhere is returned as a float64 scalar. Returns None if the
    broadcast would enlarge the tensor (the op is then not elementwise on it).
    """
    value = np.asarray(value, np.float64)
    if np.broadcast_shapes(tensor.shape, value.shape) != tuple(tensor.shape):
        return None
    flat = np.broadcast_to(value, tensor.shape).ravel()
    if flat.size and np.all(flat == flat[0]):
        return np.float64(flat[0])
    return flat[tensor.perm].reshape(node_shape)
