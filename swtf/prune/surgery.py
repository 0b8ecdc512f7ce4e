"""Filter surgery: rebuild a Keras model with some `Conv2D` filters removed.

Removing filter j of a convolution removes its kernel slice, its bias and its output feature map j, so
every layer that reads that feature map loses input channel j too. The surgery walks the layer graph
once, tracking for every tensor which of its original last-axis channels are kept, and applies one
short rule per layer type:

  Conv2D               input channels sliced from the kernel, removed filters dropped (kernel, bias)
  BatchNormalization   gamma, beta, moving mean and moving variance sliced like its input
  Flatten              feature (h, w, c) sits at (h * W + w) * C + c (Keras flattens H, W, C in order)
  Dense                kernel rows sliced like its input; its units stay
  ReLU, Activation, pooling, Dropout, global pooling
                       pass the channels through unchanged
  Add (and other element-wise merges)
                       every input must keep the same channels: layers coupled by a residual
                       connection are pruned with the same indices, or the request is refused

Any other layer is copied unchanged if no removed channel reaches it, and refused otherwise. The result
computes exactly what the original computes with each removed channel set to zero after its last
per-channel layer (for conv -> ReLU, zero kernel and bias; for conv -> BatchNorm, the batch norm's
output must be zero too, since a zeroed convolution still gets BN's shift `beta - gamma * mean / std`).
"""

import inspect

import keras
import numpy as np

from swtf.errors import SwtfError
from swtf.models.zoo import ARCHITECTURES
from swtf.prune.graph import layer_graph

PASS_THROUGH = (keras.layers.ReLU, keras.layers.Activation, keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D, keras.layers.Dropout, keras.layers.SpatialDropout2D,
                keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
ELEMENTWISE_MERGES = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
                      keras.layers.Maximum, keras.layers.Minimum)
CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")
SUPPORTED = ("Conv2D, BatchNormalization, ReLU, Activation, MaxPooling2D, AveragePooling2D, Dropout, "
             "global pooling, Flatten, Dense and Add")


def _names(sources):
    return ", ".join(sorted(sources))


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def _require(condition, sources, layer, why):
    if not condition:
        raise SwtfError(f"cannot remove filters of {_names(sources)}: their feature maps reach layer "
                        f"{layer.name!r} ({type(layer).__name__}), {why}")


def _require_channels_last(layer, sources):
    data_format = getattr(layer, "data_format", "channels_last")
    _require(data_format == "channels_last", sources, layer,
             f"which is {data_format}; surgery handles channels_last only")


def _conv_rule(node, kept, sources, removed):
    """Slices input channels `kept` out of the kernel and drops the `removed` filters."""
    layer = node.layer
    if removed is not None or kept is not None:
        _require_channels_last(layer, sources | {layer.name})
        _require(_activation_name(layer) not in CHANNEL_MIXING_ACTIVATIONS, sources | {layer.name}, layer,
                 f"whose {_activation_name(layer)} activation mixes channels")
    if kept is not None:
        _require(layer.groups == 1, sources, layer, f"a grouped convolution (groups={layer.groups})")
    out_kept = None if removed is None else np.setdiff1d(np.arange(layer.filters), removed)
    weights = []
    for variable in layer.weights:
        w = np.asarray(variable)
        if variable.name == "kernel":
            w = w if kept is None else w[:, :, kept, :]
            w = w if out_kept is None else w[..., out_kept]
        elif variable.name == "bias" and out_kept is not None:
            w = w[out_kept]
        weights.append(w)
    config = {} if out_kept is None else {"filters": int(out_kept.size)}
    return out_kept, weights, config


def _batch_norm_rule(node, kept, sources):
    """Slices every per-channel parameter (gamma, beta, moving mean, moving variance)."""
    layer = node.layer
    rank = len(node.input_shapes[0]) + 1
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    _require([a % rank for a in axes] == [rank - 1], sources, layer,
             f"which normalises axis {layer.axis}; surgery needs the channel (last) axis")
    return kept, [np.asarray(v)[kept] for v in layer.weights], {}


def _pass_through_rule(node, kept, sources):
    layer = node.layer
    _require_channels_last(layer, sources)
    _require(_activation_name(layer) not in CHANNEL_MIXING_ACTIVATIONS, sources, layer,
             f"whose {_activation_name(layer)} activation mixes channels")
    return kept, [np.asarray(v) for v in layer.weights], {}


def _flatten_rule(node, kept, sources):
    """Feature (..., c) of a (..., C) input is flattened to position `prefix_index * C + c`."""
    layer = node.layer
    _require_channels_last(layer, sources)
    shape = node.input_shapes[0]
    _require(None not in shape, sources, layer, f"whose input shape {shape} is not fully known")
    positions = int(np.prod(shape[:-1], dtype=np.int64))
    flat = (np.arange(positions)[:, None] * shape[-1] + kept[None, :]).reshape(-1)
    return flat, [np.asarray(v) for v in layer.weights], {}


def _dense_rule(node, kept, sources):
    """Drops the kernel rows of removed input features; the layer's units are unchanged."""
    weights = [np.asarray(v)[kept] if v.name == "kernel" else np.asarray(v) for v in node.layer.weights]
    return None, weights, {}


def _merge_kept(node, kepts, sources_in):
    """An element-wise merge needs all its inputs to keep the same channels."""
    first = kepts[0]
    same = all((k is None and first is None) or (k is not None and first is not None and np.array_equal(k, first))
               for k in kepts)
    if not same:
        coupled = set().union(*sources_in)
        raise SwtfError(f"layers {_names(coupled)} are coupled by {type(node.layer).__name__} "
                        f"{node.layer.name!r}: remove the same filter indices from all of them, or from none")
    return first


def _validate(graph, removals):
    """Checks names and indices; returns {conv name: sorted unique indices} for non-empty removals."""
    convs = {node.layer.name: node.layer for node in graph.conv_nodes()}
    layers = {node.layer.name: node.layer for node in graph.nodes}
    checked = {}
    for name, indices in removals.items():
        if name not in layers:
            raise SwtfError(f"unknown layer {name!r}; the Conv2D layers are: {_names(convs) or 'none'}")
        if name not in convs:
            raise SwtfError(f"layer {name!r} is a {type(layers[name]).__name__}; only Conv2D filters can be "
                            f"removed (Conv2D layers: {_names(convs) or 'none'})")
        indices = np.asarray(indices).reshape(-1)
        if indices.size == 0:
            continue
        filters = convs[name].filters
        if not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0 or indices.max() >= filters:
            raise SwtfError(f"filter indices for {name!r} must be integers in [0, {filters}), got {indices.tolist()}")
        indices = np.unique(indices)
        if indices.size >= filters:
            raise SwtfError(f"cannot remove all {filters} filters of {name!r}; keep at least one")
        checked[name] = indices
    return checked


def _propagate(graph, removals):
    """Walks the graph once; returns per-layer (new weights, config updates)."""
    kept = {key: None for key in graph.input_keys}
    sources = {key: frozenset({"the model input"}) for key in graph.input_keys}
    plans = {}
    for node in graph.nodes:
        layer = node.layer
        kepts = [kept[k] for k in node.inputs]
        sources_in = [sources[k] for k in node.inputs]
        incoming = frozenset().union(*sources_in)
        if isinstance(layer, keras.layers.Conv2D):
            out, weights, config = _conv_rule(node, kepts[0], incoming, removals.get(layer.name))
            out_sources = frozenset({layer.name})
        elif isinstance(layer, ELEMENTWISE_MERGES):
            out, weights, config = _merge_kept(node, kepts, sources_in), [np.asarray(v) for v in layer.weights], {}
            out_sources = incoming
        elif all(k is None for k in kepts):
            out, weights, config = None, [np.asarray(v) for v in layer.weights], {}
            out_sources = frozenset({layer.name})
        elif isinstance(layer, keras.layers.BatchNormalization):
            (out, weights, config), out_sources = _batch_norm_rule(node, kepts[0], incoming), incoming
        elif isinstance(layer, PASS_THROUGH):
            (out, weights, config), out_sources = _pass_through_rule(node, kepts[0], incoming), incoming
        elif isinstance(layer, keras.layers.Flatten):
            (out, weights, config), out_sources = _flatten_rule(node, kepts[0], incoming), incoming
        elif isinstance(layer, keras.layers.Dense):
            (out, weights, config), out_sources = _dense_rule(node, kepts[0], incoming), frozenset({layer.name})
        else:
            raise SwtfError(f"cannot remove filters of {_names(incoming)}: their feature maps reach layer "
                            f"{layer.name!r} ({type(layer).__name__}), which surgery cannot follow; "
                            f"it supports {SUPPORTED}")
        kept[node.output], sources[node.output] = out, out_sources
        plans[layer.name] = (weights, config)
    for key in graph.output_keys:
        if kept[key] is not None:
            raise SwtfError(f"removing filters of {_names(sources[key])} would narrow the model's output; "
                            f"prune only layers followed by a Dense or Flatten")
    return plans


def _pruned_hparams(model, graph_after):
    """A LayerStack's hparams with `filters` updated, for architectures that take a `filters` argument."""
    hparams = dict(model.hparams)
    builder = ARCHITECTURES.get(model.architecture)
    parameter = inspect.signature(builder).parameters.get("filters") if builder else None
    if parameter is not None:
        counts = [int(node.layer.filters) for node in graph_after.conv_nodes()]
        single = len(counts) == 1 and isinstance(hparams.get("filters", parameter.default), int)
        hparams["filters"] = counts[0] if single else counts
    return hparams


def _rebuild(model, graph, new_layers):
    """A model of the same kind as `model`, made of `new_layers` (by name), in the same topology."""
    from swtf.models.stack import LayerStack

    ordered = [new_layers[node.layer.name] for node in graph.nodes]
    if isinstance(model, LayerStack):
        stack = LayerStack(ordered, model.input_shape_, architecture=model.architecture, hparams=model.hparams,
                           name=model.name)
        stack.hparams = _pruned_hparams(model, layer_graph(stack))
        return stack
    if isinstance(model, keras.Sequential):
        return keras.Sequential([keras.Input(model.inputs[0].shape[1:])] + ordered, name=model.name)
    return keras.models.clone_model(model, clone_function=lambda layer: new_layers[layer.name])


def remove_filters(model, removals):
    """Returns a new, smaller model without the given `Conv2D` filters; `model` is left unchanged.

    Args:
      model: a built `LayerStack`, `keras.Sequential` or functional `keras.Model` (see module docstring for
        the layers surgery can follow).
      removals: `{conv_layer_name: filter indices}`; indices may repeat or be empty.

    Returns:
      A model of the same kind (a `LayerStack` keeps its architecture name; its `filters` hparam, where the
      architecture has one, is updated) with the same weights minus the removed filters and channels.

    Raises:
      SwtfError: unknown or non-Conv2D layer names, indices out of range, removing every filter of a layer,
        layers coupled by a residual merge pruned differently, or a removed channel reaching a layer the
        surgery cannot follow.
    """
    graph = layer_graph(model)
    plans = _propagate(graph, _validate(graph, removals))
    new_layers = {}
    for node in graph.nodes:
        config = dict(node.layer.get_config(), **plans[node.layer.name][1])
        new_layers[node.layer.name] = node.layer.__class__.from_config(config)
    pruned = _rebuild(model, graph, new_layers)
    for name, (weights, _) in plans.items():
        new_layers[name].set_weights(weights)
    return pruned
