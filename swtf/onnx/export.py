"""Export of Keras models to ONNX (via tf2onnx's tf.function converter), checked against onnxruntime.

The exported graph takes the model's own input layout (e.g. NHWC images, input `images`) with a free
batch axis and computes what the model computes (a final softmax included). tf2onnx's Keras entry point
does not handle Keras 3 models, so the model is traced as a `tf.function` and that is converted.
"""

import logging

import numpy as np
import onnx
import tensorflow as tf

from swtf import io
from swtf.errors import SwtfError, first_line
from swtf.onnx.runtime import Session

INPUT_NAME = "images"
OPSET = 13
MAX_GAP = 1e-4


def keras_to_onnx(model, input_shape, opset=OPSET):
    """The `onnx.ModelProto` of Keras `model` for per-example `input_shape`."""
    try:
        import tf2onnx
    except ImportError:
        raise SwtfError("ONNX export needs tf2onnx: pip install 'tf2onnx>=1.17'") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = tf.TensorSpec((None,) + tuple(input_shape), tf.float32, name=INPUT_NAME)
    function = tf.function(lambda images: model(images, training=False))
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=(spec,), opset=opset)
    except Exception as err:  # tf2onnx raises many types for ops it cannot convert
        raise SwtfError(f"tf2onnx cannot convert the model: {first_line(err)}") from None
    return proto


def runtime_gap(proto, model, probe):
    """Max |onnxruntime - Keras| over the float32 batch `probe`."""
    session = Session(proto, INPUT_NAME, (1,) + probe.shape[1:])
    expected = np.asarray(model(probe, training=False), np.float64).reshape(len(probe), -1)
    return float(np.max(np.abs(session.run(probe)[0] - expected)))


def export_onnx(model, path, input_shape, probe):
    """Writes `model` as ONNX at `path` if onnxruntime matches it on `probe` within MAX_GAP; returns the gap."""
    proto = keras_to_onnx(model, input_shape)
    gap = runtime_gap(proto, model, np.asarray(probe, np.float32))
    if not gap <= MAX_GAP:
        raise SwtfError(f"the ONNX export differs from the Keras model by {gap:.3g} (> {MAX_GAP:g}); not written")
    try:  # checked before writing, so a failing check leaves no file behind
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise SwtfError(f"the ONNX export fails onnx's model check: {first_line(err)}; not written") from None
    io.write_bytes(path, proto.SerializeToString())
    return gap
