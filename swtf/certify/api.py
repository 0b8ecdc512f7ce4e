"""Public entry points: certified logit and margin bounds for a Keras model, SavedModel or Network.

What a bound means: for every input x in the perturbation set (an L-inf ball intersected with the input
domain box `clip`, or an L2 ball, see `perturbation`), the exact real-arithmetic output of the network
with the model's float weights lies within the bounds, up to the documented outward rounding margin.
"""

import hashlib
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from swtf.certify import spec as specs
from swtf.certify.keras_frontend import from_keras
from swtf.certify.network import Network
from swtf.certify.perturbation import input_set
from swtf.certify.savedmodel_frontend import from_saved_model
from swtf.certify.verifier import METHODS, Verifier
from swtf.errors import SwtfError

NORMS = ("linf", "l2")
_DTYPES = {"float64": tf.float64, "float32": tf.float32}

_KERAS_CACHE = weakref.WeakKeyDictionary()  # keras model -> (weights fingerprint, Network)
_PATH_CACHE = {}  # (absolute path, mtime) -> Network
_VERIFIERS = weakref.WeakKeyDictionary()  # Network -> {dtype: Verifier}


def _fingerprint(model):
    digest = hashlib.blake2b(digest_size=16)
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def as_network(model):
    """The `Network` of `model` (a Keras model, a SavedModel directory, or a Network), cached.

    Keras models are cached per object and re-translated only when their weights change, so a model
    trained further after a first certification is never certified with stale weights.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(model))
        if not os.path.exists(path):
            raise SwtfError(f"no SavedModel at {path}; pass a Keras model, a Network or an existing path")
        key = (path, os.path.getmtime(path))
        if key not in _PATH_CACHE:
            _PATH_CACHE[key] = from_saved_model(path)
        return _PATH_CACHE[key]
    if isinstance(model, keras.Model):
        fingerprint = _fingerprint(model)
        cached = _KERAS_CACHE.get(model)
        if cached is None or cached[0] != fingerprint:
            cached = _KERAS_CACHE[model] = (fingerprint, from_keras(model))
        return cached[1]
    raise SwtfError(f"cannot certify a {type(model).__name__}; pass a Keras model, a SavedModel path or a "
                    "swtf.certify.Network")


def verifier_for(network, dtype="float64"):
    """The cached `Verifier` of `network` in `dtype` ('float64' or 'float32')."""
    if dtype not in _DTYPES:
        raise SwtfError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    per_dtype = _VERIFIERS.setdefault(network, {})
    if dtype not in per_dtype:
        per_dtype[dtype] = Verifier(network, _DTYPES[dtype])
    return per_dtype[dtype]


def check_points(network, x):
    """`x` as float64 (N, *input_shape), or SwtfError naming expected and received shapes."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1:] != network.input_shape or x.ndim != len(network.input_shape) + 1:
        raise SwtfError(f"Expected input shape {(None,) + network.input_shape}, received {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SwtfError("inputs contain NaN or infinite values")
    return x


def check_radii(eps, num_points):
    """`eps` (scalar or per point) as float64 (N,), finite and non-negative."""
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] != num_points):
        raise SwtfError(f"eps must be a scalar or one radius per point ({num_points}), got shape {eps.shape}")
    if not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise SwtfError(f"eps must be finite and >= 0, got {eps if eps.ndim == 0 else eps[~(eps >= 0)][:3]}")
    return np.broadcast_to(eps, (num_points,)).copy()


def check_options(x, norm, method, clip):
    """Validates the method options; `clip` as (lo, hi) or None."""
    if norm not in NORMS:
        raise SwtfError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if method not in METHODS:
        raise SwtfError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if clip is None or norm == "l2":
        return None
    lo, hi = (float(c) for c in clip)
    if not lo <= hi:
        raise SwtfError(f"clip must be (low, high) with low <= high, got {clip}")
    if x.size and (x.min() < lo or x.max() > hi):
        raise SwtfError(f"inputs span [{x.min():g}, {x.max():g}], outside clip=({lo:g}, {hi:g}); "
                        "rescale them or pass clip=None")
    return lo, hi


def check_labels(y, num_points, num_classes):
    y = np.asarray(y)
    if y.shape != (num_points,) or not np.issubdtype(y.dtype, np.integer) or np.any(y < 0) or np.any(
            y >= num_classes):
        raise SwtfError(f"labels must be {num_points} integers in [0, {num_classes}), got shape {y.shape}")
    return y.astype(np.int64)


def proof_safe(lower):
    """NumPy float64 copy of the lower bounds `lower` with NaN (which would be a bug) replaced by -inf, the
    trivially sound bound, so that it can never be read as a proof."""
    lower = np.asarray(lower, np.float64)
    return np.where(np.isnan(lower), -np.inf, lower)


def spec_lower_bounds(verifier, x, eps, spec, norm, method, clip):
    """(N, S) NumPy lower bounds of the spec rows, for already-validated arguments (`proof_safe`)."""
    dtype = verifier.dtype
    inputs = input_set(norm, tf.constant(x, dtype), tf.constant(eps, dtype), clip)
    return proof_safe(verifier.spec_lower_bounds(inputs, spec, method).numpy())


def bounds(model, x, eps, *, norm="linf", method="crown", clip=(0.0, 1.0), dtype="float64"):
    """Certified lower and upper bounds of every logit over the perturbation set of each point.

    Args:
      model: a Keras model, a SavedModel path, or a `Network`.
      x: (N, *input_shape) points.
      eps: radius, a scalar or one per point.
      norm: 'linf' (ball intersected with the box `clip`) or 'l2' (ball; `clip` ignored).
      method: 'ibp', 'crown', 'crown-ibp' or 'alpha-crown'.
      clip: the input domain (low, high), or None for no domain constraint.
      dtype: 'float64' (default, for proofs) or 'float32'.

    Returns:
      (lower, upper), NumPy float64 arrays of shape (N, num_classes).
    """
    network = as_network(model)
    x = check_points(network, x)
    eps = check_radii(eps, len(x))
    clip = check_options(x, norm, method, clip)
    verifier = verifier_for(network, dtype)
    k = network.output_size
    lower = spec_lower_bounds(verifier, x, eps, specs.logit_spec(len(x), k, verifier.dtype), norm, method, clip)
    return lower[:, :k], -lower[:, k:]


def margin_bounds(model, x, y, eps, *, norm="linf", method="crown", clip=(0.0, 1.0), dtype="float64"):
    """Certified lower bounds of the margins f_y - f_j over the perturbation set of each point.

    Arguments as for `bounds`, plus `y`: (N,) integer labels. Returns (N, num_classes) NumPy lower
    bounds; the entry j = y is +inf (the margin f_y - f_y vanishes and constrains nothing), so a point
    is certified exactly when `(margin_bounds(...) > 0).all(axis=1)`.
    """
    network = as_network(model)
    x = check_points(network, x)
    eps = check_radii(eps, len(x))
    y = check_labels(y, len(x), network.output_size)
    clip = check_options(x, norm, method, clip)
    return margin_lower_bounds(verifier_for(network, dtype), x, y, eps, norm, method, clip)


def margin_lower_bounds(verifier, x, y, eps, norm, method, clip):
    """`margin_bounds` for already-validated arguments (used by the radius search)."""
    k = verifier.network.output_size
    lower = spec_lower_bounds(verifier, x, eps, specs.margin_spec(y, k, verifier.dtype), norm, method, clip)
    lower[np.arange(len(y)), y] = np.inf
    return lower
