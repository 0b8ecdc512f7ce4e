"""The study's architectures, each a function returning the ordered layers of a `LayerStack`.

Teachers: `cifar_cnn` (the original study's CIFAR-10 teacher, 550,570 parameters on 32x32x3),
`svhn_cnn`, `digits_cnn` (cifar_cnn scaled to 8x8 digits), and `convex_cnn` (the certifiable family of Wong & Kolter: strided convolutions, no max
pooling). Students: `snn` (one hidden dense layer), `scnn1`, `scnn2` (small conv nets with max pooling),
and `shallow_cnn` (1-2 strided convolutions and dense layers, no pooling, so it can be certified).

Every architecture may start with a per-channel normalisation layer (`normalization=(mean, std)`), so
that perturbation radii are always in [0, 1] pixel units.
"""

import keras
import numpy as np

from swtf.errors import SwtfError, first_line
from swtf.models.stack import LayerStack


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _normalization_layers(normalization, input_shape):
    """A fixed (non-trainable) per-channel `(x - mean) / std` layer, or nothing."""
    if normalization is None:
        return []
    mean, std = (np.asarray(v, dtype="float32").reshape(-1) for v in normalization)
    channels = input_shape[-1]
    if mean.size not in (1, channels) or std.size not in (1, channels) or np.any(std <= 0):
        raise SwtfError(f"normalization needs {channels} means and {channels} positive stds, got {normalization}")
    mean = np.broadcast_to(mean, (channels,))
    std = np.broadcast_to(std, (channels,))
    return [keras.layers.Normalization(axis=-1, mean=mean.tolist(), variance=(std ** 2).tolist(), name="normalize")]


def _conv_pool_blocks(blocks, dropout, kernel_size=3):
    """VGG-style blocks: per block, its convolutions ('same', ReLU), 2x2 max pooling and dropout."""
    layers = []
    for b, block in enumerate(blocks):
        for i, filters in enumerate(block):
            layers.append(keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu",
                                              name=f"conv{b + 1}_{i + 1}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{b + 1}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"drop{b + 1}"))
    return layers


def _dense_head(hidden, num_classes, dropout=0.0):
    """Flatten, hidden ReLU dense layers (each followed by dropout if asked), and the logits layer."""
    layers = [keras.layers.Flatten(name="flatten")]
    for i, width in enumerate(hidden):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"dense{i + 1}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"drop_dense{i + 1}"))
    layers.append(keras.layers.Dense(num_classes, name="logits"))
    return layers


def _vgg(num_classes, blocks, dense, dropout):
    """VGG-style blocks (each a list of filter counts) and a dense head; `dropout` = (conv, dense) rates."""
    blocks = [_as_tuple(block) for block in blocks]
    if not blocks or not all(blocks):
        raise SwtfError(f"blocks must list at least one block of filter counts, got {blocks}")
    conv_drop, dense_drop = dropout
    return _conv_pool_blocks(blocks, conv_drop) + _dense_head(_as_tuple(dense) if dense else (), num_classes,
                                                              dense_drop)


def cifar_cnn(num_classes, blocks=((32, 32), (64, 64), (128, 128)), dense=(128,), dropout=(0.25, 0.5)):
    """The original study's CIFAR-10 teacher: 3 VGG blocks (32, 64, 128) and Dense128. `blocks` and `dense`
    scale it (e.g. to 8x8 digits: [[8, 8], [16, 16], [32, 32]] and [64])."""
    return _vgg(num_classes, blocks, dense, dropout)


def digits_cnn(num_classes, blocks=((8, 8), (16, 16), (32, 32)), dense=(64,), dropout=(0.1, 0.25)):
    """cifar_cnn scaled to 8x8 inputs (the default digits study's teacher): the same three VGG blocks of two
    3x3 convolutions and 2x2 max pooling with 8, 16 and 32 filters, and Dense64: seven weight layers, 20,802
    parameters."""
    return _vgg(num_classes, blocks, dense, dropout)


def svhn_cnn(num_classes, blocks=((32, 32), (64, 64)), dense=(512,), dropout=(0.25, 0.5)):
    """The original study's SVHN teacher: 2 VGG blocks (32, 64) and Dense512."""
    return _vgg(num_classes, blocks, dense, dropout)


def strided_cnn(num_classes, filters=(16, 32), kernel_size=4, strides=2, dense=(100,)):
    """Convolutions with stride instead of pooling ('same' padding, ReLU), then dense layers.

    This is the shape of Wong & Kolter's provably-robust networks: every op is affine or ReLU, so the
    whole network can be certified.
    """
    filters = _as_tuple(filters)
    kernels = _as_tuple(kernel_size) * (len(filters) if not isinstance(kernel_size, (list, tuple)) else 1)
    strides = _as_tuple(strides) * (len(filters) if not isinstance(strides, (list, tuple)) else 1)
    if not len(filters) == len(kernels) == len(strides):
        raise SwtfError(f"filters {filters}, kernel_size {kernels} and strides {strides} differ in length")
    layers = [keras.layers.Conv2D(f, k, strides=s, padding="same", activation="relu", name=f"conv{i + 1}")
              for i, (f, k, s) in enumerate(zip(filters, kernels, strides))]
    return layers + _dense_head(_as_tuple(dense) if dense else (), num_classes)


def convex_cnn(num_classes, filters=(16, 32), kernel_size=4, strides=2, dense=(100,)):
    """Wong & Kolter's small provably-robust CNN (4x4 stride-2 convs, Dense100); widen via hparams."""
    return strided_cnn(num_classes, filters, kernel_size, strides, dense)


def shallow_cnn(num_classes, filters=(16,), kernel_size=4, strides=2, dense=(100,)):
    """A certifiable student: one or two strided convolutions and a dense layer, no pooling."""
    if not 1 <= len(_as_tuple(filters)) <= 2:
        raise SwtfError(f"shallow_cnn takes 1 or 2 convolutions, got filters={filters}")
    return strided_cnn(num_classes, filters, kernel_size, strides, dense)


def snn(num_classes, width=128):
    """Shallow neural network: one dense hidden layer of `width` ReLUs."""
    return _dense_head([width], num_classes)


def scnn1(num_classes, filters=32, dense=()):
    """Shallow CNN: one 3x3 convolution, 2x2 max pooling, optional hidden dense layers."""
    return _conv_pool_blocks([(filters,)], 0.0) + _dense_head(_as_tuple(dense) if dense else (), num_classes)


def scnn2(num_classes, filters=(32, 64), dense=()):
    """Shallow CNN: two 3x3 convolutions, 2x2 max pooling, optional hidden dense layers."""
    c1, c2 = _as_tuple(filters)
    return _conv_pool_blocks([(c1, c2)], 0.0) + _dense_head(_as_tuple(dense) if dense else (), num_classes)


ARCHITECTURES = {
    "cifar_cnn": cifar_cnn,
    "svhn_cnn": svhn_cnn,
    "digits_cnn": digits_cnn,
    "convex_cnn": convex_cnn,
    "shallow_cnn": shallow_cnn,
    "snn": snn,
    "scnn1": scnn1,
    "scnn2": scnn2,
}


def _json_ready(value):
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def build(name, input_shape, num_classes, *, normalization=None, seed=None, **hparams):
    """Builds zoo architecture `name` as a `LayerStack` for `input_shape` (H, W, C) and `num_classes`.

    Args:
      name: one of `ARCHITECTURES`.
      input_shape: shape of one image, without the batch axis.
      num_classes: number of logits.
      normalization: optional `(mean, std)` per channel, applied inside the model.
      seed: if given, seeds Keras before building, so the initial weights are reproducible.
      **hparams: the architecture's own hyper-parameters (see each function).
    """
    if name not in ARCHITECTURES:
        raise SwtfError(f"unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise SwtfError(f"input_shape must be (height, width, channels), got {input_shape}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    try:
        layers = ARCHITECTURES[name](num_classes, **hparams)
    except (TypeError, ValueError) as err:  # an unknown key, or a value Keras refuses (a width of -5)
        raise SwtfError(f"bad hyper-parameters for {name} ({hparams}): {first_line(err)}") from None
    layers = _normalization_layers(normalization, input_shape) + layers
    recorded = {k: _json_ready(v) for k, v in hparams.items()}
    if normalization is not None:
        recorded["normalization"] = _json_ready([list(np.ravel(v)) for v in normalization])
    try:
        return LayerStack(layers, input_shape, architecture=name, hparams=recorded, name=name)
    except ValueError as err:
        raise SwtfError(f"{name} does not fit input shape {input_shape}: {err}") from None


def count_params(model):
    """Number of parameters of any Keras model, trainable or not (fixed normalisation constants are not weights)."""
    return int(sum(np.prod(w.shape) for w in model.weights))


def example_shape(model):
    """Shape of one input the model expects (no batch axis), or None if the model does not say."""
    shape = getattr(model, "input_shape_", None)
    if shape is None:
        try:
            shape = model.input_shape[1:]
        except (AttributeError, ValueError):  # a subclassed or unbuilt model
            return None
    try:
        return tuple(int(d) for d in shape)
    except TypeError:  # an unknown dimension (None), or several inputs
        return None
