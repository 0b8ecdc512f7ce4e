"""Export of trained models as TensorFlow SavedModels, the artifact users deploy."""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from swtf.errors import SwtfError
from swtf.models import example_shape

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class _Serving(tf.Module):
    """Wraps a Keras model with one named, fixed-shape serving signature: images -> logits."""

    def __init__(self, model, input_shape):
        super().__init__()
        self.model = model
        spec = tf.TensorSpec((None,) + tuple(input_shape), tf.float32, name=INPUT_NAME)
        self.serve = tf.function(self._serve, input_signature=[spec])

    def _serve(self, images):
        return {OUTPUT_NAME: self.model(images, training=False)}


def export_saved_model(model, path, input_shape=None):
    """Writes `model` as a SavedModel at `path` (replaced atomically) with signature `serving_default`.

    `input_shape`: one input's shape without the batch axis, e.g. (28, 28, 1); needed only when the model
    does not know it (a subclassed model that is not a swtf `LayerStack`).
    """
    known = example_shape(model)
    if input_shape is None and known is None:
        raise SwtfError(f"model {model.name!r} does not say what input shape it takes; pass input_shape, "
                        f"e.g. input_shape=(28, 28, 1)")
    if input_shape is not None and known is not None and tuple(input_shape) != known:
        raise SwtfError(f"input_shape {tuple(input_shape)} differs from the model's input shape {known}; "
                        f"leave input_shape out")
    input_shape = known or tuple(input_shape)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    try:
        module = _Serving(model, input_shape)
        tf.saved_model.save(module, staging, signatures={SIGNATURE: module.serve.get_concrete_function()})
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return path


def load_serving_function(path):
    """The `serving_default` function of a SavedModel written by `export_saved_model`."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise SwtfError(f"{path} is not a SavedModel folder (no saved_model.pb); export a model first")
    loaded = tf.saved_model.load(path)
    if SIGNATURE not in loaded.signatures:
        raise SwtfError(f"{path} has no {SIGNATURE!r} signature (it has {', '.join(loaded.signatures)})")
    serve = loaded.signatures[SIGNATURE]
    return lambda x: serve(**{INPUT_NAME: tf.constant(np.asarray(x, np.float32))})[OUTPUT_NAME].numpy()
