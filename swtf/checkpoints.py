"""Saving and loading Keras models. Checkpoints are untrusted input: `safe_mode=True`, no pickle."""

import os
import zipfile

import keras
import numpy as np

from swtf.errors import SwtfError, first_line
from swtf.io import atomic_path


def check_finite_weights(model, source):
    """Refuses a model with NaN or infinite weights (a diverged run or a corrupt file)."""
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise SwtfError(f"{source}: weight {weight.path} has NaN or infinite values; retrain or use another "
                            f"checkpoint")


def save_model(model, path):
    """Writes `model` to `path` (`.keras`) atomically."""
    if not str(path).endswith(".keras"):
        raise SwtfError(f"model files end in .keras, got {path}")
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path):
    """Loads a `.keras` model with `safe_mode=True` and checks its weights are finite."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SwtfError(f"model file {path} not found; train it first or pass an existing .keras file")
    if not zipfile.is_zipfile(path):
        raise SwtfError(f"{path} is not a Keras .keras archive (corrupt or wrong format); re-save or retrain it")
    import swtf.models  # noqa: F401  (registers LayerStack for deserialisation)

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for bad archives
        raise SwtfError(f"cannot load {path}: {first_line(err)}; retrain it or restore the file") from None
    check_finite_weights(model, path)
    return model
