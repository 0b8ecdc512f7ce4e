"""`certified_radius`: the largest radius each point is certified at, by batched bisection.

All points still searching bisect together: each step verifies each of them at its own midpoint in one
batched call (points already resolved, or misclassified, are not verified again). A midpoint at or
beyond the distance of a counterexample a short attack found (`counterexamples`) is refuted without a
verification: no sound method certifies a ball holding a misclassified point, so this changes which
steps cost a bound computation (the largest radii, where they cost most), not the radii found.
A point's lower end only ever moves to a radius that was itself verified, so the returned radius is
always one whose certificate was computed (never an unchecked midpoint); the certificate covers the
whole ball of that radius, hence every smaller radius too.
"""

import numpy as np

from swtf.certify import api, bab
from swtf.certify.counterexamples import counterexample_radii
from swtf.certify.exact import input_box
from swtf.certify.network import forward
from swtf.errors import SwtfError


# Networks from this many nonlinear neurons (ReLU, sigmoid, tanh, max pooling outputs) on search counterexamples by default. Measured: the default digits study's
# certify stage (nine models of at most ~500 ReLUs, 200 points) took 26 s without the search and 37 s with
# it (compiling the attack per model), while a 4-conv digits teacher (~4,000 ReLUs) and a CIFAR-size
# convex_cnn (~6,000) run 10-30% faster with it.
COUNTEREXAMPLE_MIN_NEURONS = 2048
DEFAULT_TIMEOUT = 10.0  # seconds of branch and bound per point and bisection step (method 'bab')


def check_bab_options(norm, dtype, timeout_per_point):
    """SwtfError (one line) for options branch and bound does not support."""
    if norm != "linf":
        raise SwtfError(f"method 'bab' supports norm='linf' only, got {norm!r}: its leaves are linear programs "
                        "over a box; use alpha-crown for L2")
    if dtype != "float64":
        raise SwtfError(f"method 'bab' gives proofs in float64 only, got dtype={dtype!r}")
    if not (np.isfinite(timeout_per_point) and timeout_per_point > 0):
        raise SwtfError(f"timeout_per_point must be a positive number of seconds, got {timeout_per_point}")


def verified_at(model, verifier, x, y, radii, *, norm, method, clip, timeout_per_point=DEFAULT_TIMEOUT):
    """((N,) whether each point is certified at its radius, (N,) the L-inf distance of a counterexample
    branch and bound found, inf where none), for validated arguments; `method` as for `certified_radius`."""
    complete = method == "bab"
    margins = api.margin_lower_bounds(verifier, x, y, radii, norm, "alpha-crown" if complete else method, clip)
    found = np.full(len(x), np.inf)
    if not complete:
        return (margins > 0).all(axis=1), found
    verdicts = bab.verify_points(model, verifier, x, y, input_box(x, radii, clip), timeout_per_point, margins)
    for n, verdict in enumerate(verdicts):
        if verdict.status == "falsified":
            found[n] = float(np.max(np.abs(verdict.counterexample - x[n])))
    return np.array([verdict.status == "verified" for verdict in verdicts]), found


def certified_radius(model, x, y, *, norm="linf", method="crown", clip=(0.0, 1.0), max_radius=1.0,
                     tol=1e-4, dtype="float64", counterexamples=None, timeout_per_point=DEFAULT_TIMEOUT):
    """Largest certified radius per point, within `tol`, up to `max_radius`.

    Args:
      model: a Keras model, a SavedModel path, or a `Network`.
      x: (N, *input_shape) points; y: (N,) integer labels.
      norm, clip, dtype: as for `swtf.certify.bounds`.
      method: a bound method of `swtf.certify.bounds`, or 'bab': complete verification (`bab`, L-inf only,
        float64): each bisection step first bounds the margins by alpha-CROWN, then runs branch and bound
        on the classes left open, within `timeout_per_point` seconds per point; a step that ends 'unknown'
        counts as not verified, and a counterexample BaB finds refutes every radius from its distance on.
      max_radius: the largest radius tried (1.0 spans the whole [0, 1] box for 'linf'; use a larger
        value for 'l2' on big inputs).
      tol: bisection stops when the certified and the refuted radius are this close.
      counterexamples: first look for misclassified points near each input (see `counterexamples`); the
        bisection then skips verifying radii whose ball holds one (no sound method certifies them), so
        the radii are those of plain bisection, found with fewer verifications. False verifies every step;
        None (default) looks for them under 'crown' and 'alpha-crown' on networks of at least
        COUNTEREXAMPLE_MIN_NEURONS nonlinear neurons, where verifications cost far more than compiling and running
        the attack; not under 'ibp' and 'crown-ibp', nor on smaller networks, where they cost less.

    Returns:
      (N,) NumPy radii: 0 where the point is misclassified (by the network's exact evaluation) or
      nothing above 0 could be certified.
    """
    network = api.as_network(model)
    x = api.check_points(network, x)
    y = api.check_labels(y, len(x), network.output_size)
    complete = method == "bab"
    if complete:
        check_bab_options(norm, dtype, timeout_per_point)
    clip = api.check_options(x, norm, "alpha-crown" if complete else method, clip)
    if not (np.isfinite(max_radius) and max_radius > 0 and tol > 0):
        raise SwtfError(f"max_radius and tol must be positive and finite, got {max_radius}, {tol}")
    verifier = api.verifier_for(network, dtype)

    correct = np.flatnonzero(np.argmax(forward(network, x), axis=1) == y)
    nearest = np.full(len(x), np.inf)  # distance of a confirmed counterexample: no radius from there on verifies
    if counterexamples is None:
        counterexamples = complete or (method in ("crown", "alpha-crown", "alpha-crown-fixed")
                                       and network.nonlinear_count >= COUNTEREXAMPLE_MIN_NEURONS)
    if counterexamples and len(correct):
        nearest[correct] = counterexample_radii(network, x[correct], y[correct], norm=norm, clip=clip,
                                                max_radius=max_radius, min_radius=tol)

    def certified(points, radii):
        """Whether each point of `points` (indices) is certified at its radius in `radii`; radii at or past
        the point's nearest counterexample are refuted without a verification."""
        open_ = radii < nearest[points]
        result = np.zeros(len(points), bool)
        if open_.any():
            indices = points[open_]
            result[open_], found = verified_at(model, verifier, x[indices], y[indices], radii[open_], norm=norm,
                                               method=method, clip=clip, timeout_per_point=timeout_per_point)
            nearest[indices] = np.minimum(nearest[indices], found)
        return result

    low = np.zeros(len(x))
    high = np.full(len(x), float(max_radius))
    at_max = certified(correct, high[correct])
    low[correct[at_max]] = max_radius
    active = correct[~at_max]
    while len(active):
        mid = (low[active] + high[active]) / 2
        ok = certified(active, mid)
        low[active[ok]] = mid[ok]
        high[active[~ok]] = mid[~ok]
        active = active[high[active] - low[active] > tol]
    return low
