"""What a model costs: parameters and multiply-adds (FLOPs) of one forward pass of one example.

FLOPs here are multiply-accumulates of the convolution and dense layers only, the usual count in the
pruning literature (Li et al. 2017): a `Conv2D` with output (H, W, C_out) and a (k_h, k_w) kernel over
C_in channels costs H * W * C_out * k_h * k_w * C_in / groups; a `Dense` layer with n inputs and m units
costs n * m per position. Bias additions, activations, pooling and batch norm are not counted.
"""

import keras
import numpy as np

from swtf.prune.graph import layer_graph


def _multiply_adds(node):
    layer = node.layer
    if isinstance(layer, keras.layers.Conv2D):
        k_h, k_w, fan_in, _ = layer.kernel.shape  # fan_in is already C_in / groups
        return int(np.prod(node.output_shape)) * int(k_h * k_w * fan_in)
    if isinstance(layer, keras.layers.Dense):
        n_in, units = layer.kernel.shape
        return int(np.prod(node.output_shape[:-1], dtype=np.int64)) * int(n_in * units)
    return 0


def count_flops(model):
    """Multiply-adds of `model`'s Conv2D and Dense layers for one example (see the module docstring)."""
    return sum(_multiply_adds(node) for node in layer_graph(model).nodes)

