"""Keras 3 front-end: `from_keras(model)` translates a Keras model into a certifier `Network`.

Supported layers: Dense, Conv2D (activation linear, relu, sigmoid, tanh or a final softmax), Activation
(the same), ReLU (plain), Softmax (final), Flatten, Reshape, BatchNormalization, Normalization, Rescaling,
AveragePooling2D, MaxPooling2D ('valid' or TF's 'same', padded positions never win),
GlobalMaxPooling2D (a max_pool over the whole map, then a reshape to (C,) unless keepdims), Add, and
the inference-time identities (Dropout, noise, ...).

Reads `swtf.models.LayerStack` (its `ordered_layers`), `keras.Sequential` and functional models (any
DAG, including residual `Add`), nested models included. Every supported layer maps exactly onto the
primitive ops of `swtf.certify.network`; anything else raises `SwtfError` naming the layer and why.
Nothing is ever approximated: a layer is either translated exactly or refused.

Inference semantics are used: Dropout-like layers are the identity, BatchNormalization uses its moving
statistics. A final softmax is stripped (it does not change the argmax) and reported as
`Network.stripped_softmax`; a softmax anywhere else is refused.
"""

import keras
import numpy as np
from keras.src.models.functional import Functional

from swtf.certify.network import NetworkBuilder, same_pads
from swtf.errors import SwtfError
from swtf.models import LayerStack

# Layers that are the identity at inference time.
_IDENTITY_LAYERS = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.SpatialDropout1D,
                    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D, keras.layers.GaussianNoise,
                    keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.Identity,
                    keras.layers.ActivityRegularization)


def _describe(layer):
    return f"layer {layer.name!r} ({type(layer).__name__})"


def _refuse(layer, why):
    raise SwtfError(f"{_describe(layer)} is not supported by the certifier: {why}")


def _weight(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def _activation(builder, x, layer, activation):
    """Applies a Dense/Conv/Activation layer's activation: returns (node id, is_softmax)."""
    name = getattr(activation, "__name__", repr(activation))
    if activation is keras.activations.linear:
        return x, False
    if activation is keras.activations.relu:
        return builder.relu(x, layer.name + "/relu"), False
    for op in ("sigmoid", "tanh"):
        if activation is getattr(keras.activations, op):
            return builder.activation(x, op, f"{layer.name}/{op}"), False
    if activation is keras.activations.softmax:
        return x, True
    _refuse(layer, f"activation {name!r} (only relu, sigmoid, tanh, linear and a final softmax are supported)")


def _sources(layer):
    """The layer's own kernel and bias variables, which the node's float64 copies were read from."""
    return {"kernel": layer.kernel, **({"bias": layer.bias} if layer.use_bias else {})}


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        _refuse(layer, f"data_format {layer.data_format!r} (only channels_last)")


def _dense(layer, builder, x):
    if getattr(layer, "quantization_mode", None):
        _refuse(layer, f"quantized kernel ({layer.quantization_mode})")
    bias = _weight(layer.bias) if layer.use_bias else np.zeros(layer.units)
    y = builder.dense(x, _weight(layer.kernel), bias, layer.name, _sources(layer))
    return _activation(builder, y, layer, layer.activation)


def _conv2d(layer, builder, x):
    _check_channels_last(layer)
    if tuple(layer.dilation_rate) != (1, 1):
        _refuse(layer, f"dilation_rate {tuple(layer.dilation_rate)} (only 1)")
    if layer.groups != 1:
        _refuse(layer, f"groups={layer.groups} (only 1)")
    kernel = _weight(layer.kernel)
    strides = tuple(layer.strides)
    if layer.padding == "same":
        h, w = builder.shape(x)[:2]
        pads = same_pads(h, kernel.shape[0], strides[0]) + same_pads(w, kernel.shape[1], strides[1])
    else:
        pads = (0, 0, 0, 0)
    bias = _weight(layer.bias) if layer.use_bias else np.zeros(kernel.shape[3])
    y = builder.conv2d(x, kernel, bias, strides, pads, layer.name, _sources(layer))
    return _activation(builder, y, layer, layer.activation)


def _activation_layer(layer, builder, x):
    return _activation(builder, x, layer, layer.activation)


def _relu_layer(layer, builder, x):
    if layer.max_value is not None or layer.negative_slope != 0 or layer.threshold != 0:
        _refuse(layer, f"ReLU with max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                       f"threshold={layer.threshold} (only the plain ReLU)")
    return builder.relu(x, layer.name), False


def _softmax_layer(layer, builder, x):
    return x, True


def _flatten(layer, builder, x):
    _check_channels_last(layer)
    return builder.reshape(x, (int(np.prod(builder.shape(x))),), layer.name), False


def _reshape(layer, builder, x):
    return builder.reshape(x, layer.target_shape, layer.name), False


def _batch_norm(layer, builder, x):
    """Inference-mode BatchNormalization: gamma * (x - mean) / sqrt(var + eps) + beta, as x*s + t."""
    rank = len(builder.shape(x))
    if layer.axis not in (-1, rank):
        _refuse(layer, f"normalisation axis {layer.axis} (only the last, channels, axis)")
    mean, var = _weight(layer.moving_mean), _weight(layer.moving_variance)
    gamma = _weight(layer.gamma) if layer.scale else np.ones_like(mean)
    beta = _weight(layer.beta) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    return builder.affine(x, scale, beta - mean * scale, layer.name), False


def _normalization(layer, builder, x):
    """Keras Normalization: (x - mean) / max(sqrt(var), epsilon), or its inverse when `invert`."""
    mean, var = _weight(layer.mean)[0], _weight(layer.variance)[0]  # drop the broadcast batch axis
    std = np.maximum(np.sqrt(var), keras.backend.epsilon())
    if layer.invert:
        return builder.affine(x, std, mean, layer.name), False
    return builder.affine(x, 1.0 / std, -mean / std, layer.name), False


def _rescaling(layer, builder, x):
    return builder.affine(x, _weight(layer.scale), _weight(layer.offset), layer.name), False


def _average_pooling(layer, builder, x):
    _check_channels_last(layer)
    return builder.avg_pool(x, layer.pool_size, layer.strides, layer.padding, layer.name), False


def _max_pooling(layer, builder, x):
    _check_channels_last(layer)
    if layer.padding not in ("valid", "same"):
        _refuse(layer, f"padding {layer.padding!r} (only 'valid' and 'same')")
    return builder.max_pool(x, layer.pool_size, layer.strides, layer.padding, layer.name), False


def _global_max_pooling(layer, builder, x):
    """The max over the whole (H, W) map: a max_pool with that window, then (C,) unless `keepdims`."""
    _check_channels_last(layer)
    shape = builder.shape(x)
    if len(shape) != 3:
        _refuse(layer, f"input shape {shape} (only (H, W, C) maps)")
    y = builder.max_pool(x, shape[:2], (1, 1), "valid", layer.name + ("" if layer.keepdims else "/pool"))
    if layer.keepdims:
        return y, False
    return builder.reshape(y, (shape[2],), layer.name), False


def _add(layer, builder, *xs):
    y = xs[0]
    for i, other in enumerate(xs[1:]):
        y = builder.add(y, other, layer.name if i == len(xs) - 2 else f"{layer.name}/{i}")
    return y, False


_CONVERTERS = {
    keras.layers.Dense: _dense,
    keras.layers.Conv2D: _conv2d,
    keras.layers.Activation: _activation_layer,
    keras.layers.ReLU: _relu_layer,
    keras.layers.Softmax: _softmax_layer,
    keras.layers.Flatten: _flatten,
    keras.layers.Reshape: _reshape,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Normalization: _normalization,
    keras.layers.Rescaling: _rescaling,
    keras.layers.AveragePooling2D: _average_pooling,
    keras.layers.MaxPooling2D: _max_pooling,
    keras.layers.GlobalMaxPooling2D: _global_max_pooling,
    keras.layers.Add: _add,
}

_REASONS = {
    keras.layers.LeakyReLU: "leaky ReLU (only the plain ReLU)",
}


def _convert_layer(layer, builder, inputs):
    """Translates one layer applied to `inputs` [(node id, is_softmax)]; returns (node id, is_softmax)."""
    ids = [i for i, _ in inputs]
    softmaxed = any(s for _, s in inputs)
    if isinstance(layer, keras.Model):
        out = _convert_model(layer, builder, inputs)
    elif type(layer) in _IDENTITY_LAYERS:
        if len(ids) != 1:
            _refuse(layer, f"{len(ids)} inputs")
        return inputs[0]
    elif type(layer) in _CONVERTERS:
        before = len(builder)
        out = _CONVERTERS[type(layer)](layer, builder, *ids)
        if softmaxed and (out[1] or out[0] >= before):
            raise SwtfError(f"{_describe(layer)} reads a softmax output: only a final softmax can be "
                            "stripped; remove the inner softmax")
        return out[0], out[1] or softmaxed
    else:
        _refuse(layer, _REASONS.get(type(layer), "unknown layer type (supported: " + ", ".join(
            sorted(c.__name__ for c in _CONVERTERS)) + ", Dropout and nested models)"))
    return out


def _convert_sequence(layers, builder, inputs):
    value = inputs[0]
    for layer in layers:
        value = _convert_layer(layer, builder, [value])
    return value


def _convert_functional(model, builder, inputs):
    """Walks a functional model's graph from its outputs, translating each layer once."""
    if len(model.inputs) != len(inputs) or len(model.outputs) != 1:
        raise SwtfError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
                        "outputs; the certifier needs exactly one of each")
    values = {id(t): v for t, v in zip(model.inputs, inputs)}

    def resolve(tensor):
        if id(tensor) not in values:
            operation, node_index, _ = tensor._keras_history
            node = operation._inbound_nodes[node_index]
            if len(node.output_tensors) != 1:
                _refuse(operation, f"{len(node.output_tensors)} outputs")
            args = [resolve(t) for t in node.input_tensors]
            values[id(tensor)] = _convert_layer(operation, builder, args)
        return values[id(tensor)]

    return resolve(model.outputs[0])


def _convert_model(model, builder, inputs):
    if isinstance(model, LayerStack):
        return _convert_sequence(model.ordered_layers, builder, inputs)
    if isinstance(model, keras.Sequential):
        return _convert_sequence(model.layers, builder, inputs)
    _check_readable(model)
    return _convert_functional(model, builder, inputs)


def _check_readable(model):
    if not isinstance(model, (LayerStack, keras.Sequential, Functional)):
        raise SwtfError(f"model {model.name!r} ({type(model).__name__}) is a subclassed model whose graph "
                        "cannot be read; use Sequential, functional or swtf LayerStack, or export a SavedModel")


def _input_shape(model):
    if isinstance(model, LayerStack):
        return model.input_shape_
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        raise SwtfError(f"model {model.name!r} is not built; call it once or give it an Input") from None
    if isinstance(shape, list) or any(d is None for d in shape[1:]):
        raise SwtfError(f"model {model.name!r} must have one input of fixed shape, got {shape}")
    return tuple(shape[1:])


def from_keras(model):
    """Translates a Keras 3 model into a `Network` with float64 weights.

    Args:
      model: a `swtf.models.LayerStack`, `keras.Sequential` or functional `keras.Model` with one input
        of fixed shape and one vector output (the logits, optionally followed by a softmax).

    Returns:
      The `Network`; `stripped_softmax` tells whether a final softmax was removed.

    Raises:
      SwtfError: naming the first layer that cannot be translated exactly, and why.
    """
    if not isinstance(model, keras.Model):
        raise SwtfError(f"expected a Keras model, got {type(model).__name__}")
    _check_readable(model)
    builder = NetworkBuilder(_input_shape(model))
    output, softmax = _convert_model(model, builder, [(0, False)])
    if output != len(builder) - 1:  # the output is an earlier node (an identity model): copy it last
        output = builder.reshape(output, builder.shape(output), "output")
    if len(builder.shape(output)) != 1:
        raise SwtfError(f"model {model.name!r} outputs shape {builder.shape(output)}; the certifier needs "
                        "a vector of logits per input (add a Flatten)")
    return builder.build(output, stripped_softmax=softmax)
