"""`certified_radius`: the largest radius each point is certified at, by batched bisection.

All points bisect together: each step verifies every point at its own midpoint in one batched call.
A point's lower end only ever moves to a radius that was itself verified, so the returned radius is
always one whose certificate was computed (never an unchecked midpoint); the certificate covers the
whole ball of that radius, hence every smaller radius too.
"""

import numpy as np

from swtf.certify import api
from swtf.certify.network import forward
from swtf.errors import SwtfError


def certified_radius(model, x, y, *, norm="linf", method="crown", clip=(0.0, 1.0), max_radius=1.0,
                     tol=1e-4, dtype="float64"):
    """Largest certified radius per point, within `tol`, up to `max_radius`.

    Args:
      model: a Keras model, a SavedModel path, or a `Network`.
      x: (N, *input_shape) points; y: (N,) integer labels.
      norm, method, clip, dtype: as for `swtf.certify.bounds`.
      max_radius: the largest radius tried (1.0 spans the whole [0, 1] box for 'linf'; use a larger
        value for 'l2' on big inputs).
      tol: bisection stops when the certified and the refuted radius are this close.

    Returns:
      (N,) NumPy radii: 0 where the point is misclassified (by the network's exact evaluation) or
      nothing above 0 could be certified.
    """
    network = api.as_network(model)
    x = api.check_points(network, x)
    y = api.check_labels(y, len(x), network.output_size)
    clip = api.check_options(x, norm, method, clip)
    if not (np.isfinite(max_radius) and max_radius > 0 and tol > 0):
        raise SwtfError(f"max_radius and tol must be positive and finite, got {max_radius}, {tol}")
    verifier = api.verifier_for(network, dtype)

    def certified(radii):
        margins = api.margin_lower_bounds(verifier, x, y, radii, norm, method, clip)
        return (margins > 0).all(axis=1)

    correct = np.argmax(forward(network, x), axis=1) == y
    low = np.zeros(len(x))
    high = np.full(len(x), float(max_radius))
    at_max = certified(high) & correct
    low[at_max] = high[at_max]
    active = correct & ~at_max
    while active.any() and np.max(high[active] - low[active]) > tol:
        mid = np.where(active, (low + high) / 2, low)
        ok = certified(mid) & active
        low = np.where(ok, mid, low)
        high = np.where(active & ~ok, mid, high)
    return low
