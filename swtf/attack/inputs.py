"""Checks on what a caller hands an attack, raising `SwtfError` with a one-line fix."""

import math

import numpy as np

from swtf.errors import SwtfError
from swtf.models import example_shape


def check_radius(name, value):
    """A radius or step size must be a finite number >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SwtfError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise SwtfError(f"{name} must be a finite number >= 0, got {value}; pass e.g. {name}=0.1")
    return value


def check_count(name, value):
    """Steps, restarts and batch sizes are integers >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SwtfError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_index(name, value):
    """Positions in a point set are integers >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SwtfError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise SwtfError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_clip(clip):
    """The input box `(low, high)` with low < high."""
    try:
        low, high = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise SwtfError(f"clip must be a pair (low, high), got {clip!r}") from None
    if not low < high:
        raise SwtfError(f"clip must have low < high, got {clip!r}; pass e.g. clip=(0.0, 1.0)")
    return low, high


def check_batch(model, x, y, clip):
    """Returns `x` as float32 and `y` as an integer array after checking shapes and the input box (the
    label range is `check_labels`'s).

    The clean inputs must lie in the box: otherwise clipping could push an attack point out of its
    eps-ball.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    expected = example_shape(model)
    if x.ndim < 2 or (expected is not None and x.shape[1:] != expected):
        want = f"(batch,) + {expected}" if expected is not None else "(batch, ...)"
        raise SwtfError(f"expected inputs of shape {want}, received {x.shape}; reshape x to match the model")
    if y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
        raise SwtfError(f"expected {x.shape[0]} integer labels, received {y.dtype} array of shape {y.shape}; "
                        "pass class indices, not one-hot vectors")
    if not np.all(np.isfinite(x)) or x.size and (x.min() < clip[0] or x.max() > clip[1]):
        raise SwtfError(f"inputs must lie in clip={tuple(clip)}, got values in "
                        f"[{np.nanmin(x):g}, {np.nanmax(x):g}]; rescale x or pass the right clip")
    return x, y


def check_labels(y, num_classes):
    """Returns integer labels `y` as int32 after checking that each lies in [0, num_classes): checked before
    the cast, which would wrap a label of 2**32 to 0."""
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise SwtfError(f"labels must lie in [0, {num_classes}) (the model's logits), got {y[bad[0]]} at index "
                        f"{bad[0]}" + (f" and {bad.size - 1} more" if bad.size > 1 else ""))
    return y.astype(np.int32)
