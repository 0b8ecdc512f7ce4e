"""The layer graph of a Keras model, as the pruner reads it: each layer once, inputs before outputs.

Pruning needs to know, for every layer, which tensors feed it and their shapes, so that a removed
feature map can be followed to every layer that reads it. `LayerStack`s and `keras.Sequential` models are
chains; functional models are read from their nodes. Tensors are named by opaque keys; a layer applied
twice (shared weights) is refused, since its filters could not be removed for one call only.
"""

import dataclasses

import keras

from swtf.errors import SwtfError


@dataclasses.dataclass(frozen=True)
class LayerNode:
    """One application of a layer: the keys of the tensors it reads and writes, and their shapes.

    Shapes exclude the batch axis.
    """

    layer: keras.layers.Layer
    inputs: tuple
    output: object
    input_shapes: tuple
    output_shape: tuple


@dataclasses.dataclass(frozen=True)
class LayerGraph:
    """A model's layer applications in topological order, and the keys of its input and output tensors."""

    nodes: tuple
    input_keys: tuple
    output_keys: tuple

    def conv_nodes(self):
        """The `Conv2D` applications, in order: the layers whose filters can be scored and removed."""
        return [node for node in self.nodes if isinstance(node.layer, keras.layers.Conv2D)]


def _unbatched(shape):
    return tuple(None if d is None else int(d) for d in tuple(shape)[1:])


def _chain(layers, input_shape):
    """A chain of layers: tensor `i` is the input of layer `i` and the output of layer `i - 1`."""
    nodes = []
    shape = (None,) + tuple(input_shape)
    for i, layer in enumerate(layers):
        out_shape = tuple(layer.compute_output_shape(shape))
        nodes.append(LayerNode(layer, (i,), i + 1, (_unbatched(shape),), _unbatched(out_shape)))
        shape = out_shape
    return LayerGraph(tuple(nodes), (0,), (len(layers),))


def _functional(model):
    """Reads a functional model's nodes, deepest first (Keras numbers the output layers depth 0)."""
    nodes, seen = [], set()
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.operation
            if id(layer) in seen:
                raise SwtfError(f"layer {layer.name!r} is applied more than once in {model.name!r}; "
                                f"filter surgery needs each layer applied once (unshare its weights)")
            seen.add(id(layer))
            if len(node.outputs) != 1:
                raise SwtfError(f"layer {layer.name!r} has {len(node.outputs)} outputs; surgery handles one")
            nodes.append(LayerNode(layer, tuple(id(t) for t in node.input_tensors), id(node.outputs[0]),
                                   tuple(_unbatched(t.shape) for t in node.input_tensors),
                                   _unbatched(node.outputs[0].shape)))
    return LayerGraph(tuple(nodes), tuple(id(t) for t in model.inputs), tuple(id(t) for t in model.outputs))


def layer_graph(model):
    """The `LayerGraph` of a built `LayerStack`, `keras.Sequential` or functional `keras.Model`."""
    if hasattr(model, "ordered_layers"):
        return _chain(model.ordered_layers, model.input_shape_)
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise SwtfError(f"Sequential model {model.name!r} has no known input shape; "
                            f"start it with keras.Input(shape) before pruning")
        return _chain(model.layers, _unbatched(model.inputs[0].shape))
    if hasattr(model, "_nodes_by_depth"):
        if len(model.inputs) != 1:
            raise SwtfError(f"model {model.name!r} has {len(model.inputs)} inputs; pruning handles one image input")
        return _functional(model)
    raise SwtfError(f"cannot read the layers of {type(model).__name__} {model.name!r}; pass a swtf LayerStack, "
                    f"a keras.Sequential or a functional keras.Model")
