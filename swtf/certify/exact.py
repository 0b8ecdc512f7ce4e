"""Exact (complete) verification by MILP: `verify_exact`, `exact_margin_bounds`, `exact_logit_bounds`.

The big-M encoding (`milp.Encoding`) needs sound bounds of every ReLU and max-pool input: they are
full-CROWN bounds intersected with IBP bounds, computed by the certify package's `Verifier` (tighter
bounds mean fewer unstable ReLUs and undecided pooling windows, so fewer binaries and smaller big-M
constants). Networks with ops that have no exact MILP encoding (sigmoid, tanh) are refused before any
bound is computed.

Only the L-inf ball intersected with the input box is supported: it is a box, so the problem stays
linear. An L2 ball needs a quadratic constraint (a mixed-integer quadratic program), which SciPy's
`milp` (HiGHS) does not solve.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from swtf.certify import api
from swtf.certify import spec as specs
from swtf.certify.linear_ops import network_function
from swtf.certify.milp import Encoding, affine_maps, check_encodable
from swtf.certify.network import forward
from swtf.certify.perturbation import input_set
from swtf.errors import SwtfError

# A point is certified only if the solver's proven lower bound on its minimum margin exceeds this (in
# logit units); see `verify_exact`.
MARGIN_TOL = 1e-4

@dataclasses.dataclass(frozen=True)
class ExactResult:
    """The verdict on one point.

    Attributes:
      status: 'certified', 'counterexample' or 'unknown'.
      margin: the MILP-optimal minimum margin min_x min_{j != y} f_y(x) - f_j(x) over the ball, when
        the proven bound and the attained value agree within the tolerance; NaN otherwise.
      lower: a proven lower bound of that minimum margin (solver dual bounds and CROWN bounds).
      upper: the smallest margin attained by a point found (float64 reference evaluation).
      target: the class j of `upper`'s margin.
      counterexample: a point of the ball that the model misclassifies (confirmed in float32 and
        float64), or None.
      seconds: wall time spent on the point.
      reason: why the status is 'unknown' (empty otherwise).
    """

    status: str
    margin: float
    lower: float
    upper: float
    target: int
    counterexample: object
    seconds: float
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class ExactBounds:
    """MILP optima per point and spec row: `value` attained by `points` (float64 reference evaluation),
    `bound` the solver's proven bound on the optimum (below `value` for minima, above for maxima)."""

    value: np.ndarray
    bound: np.ndarray
    points: np.ndarray


def preactivation_bounds(network, x, eps, clip):
    """{nonlinear node input id: (lower, upper)}, each (N, *shape): full CROWN intersected with IBP, float64."""
    inputs = input_set("linf", tf.constant(x, tf.float64), tf.constant(eps, tf.float64), clip)
    return box_preactivation_bounds(network, inputs)


def box_preactivation_bounds(network, inputs):
    """`preactivation_bounds` over any float64 input set `inputs`, e.g. a `perturbation.LinfBox`."""
    bounds, _ = api.verifier_for(network).intermediate_bounds(inputs, tighten_with_ibp=True)
    return {k: (lower.numpy(), upper.numpy()) for k, (lower, upper) in bounds.items()}


def input_box(x, eps, clip):
    radius = eps.reshape((-1,) + (1,) * (x.ndim - 1))
    lower, upper = x - radius, x + radius
    if clip is not None:
        lower, upper = np.maximum(lower, clip[0]), np.minimum(upper, clip[1])
    return lower, upper


def _prepare(model, x, eps, clip, norm="linf"):
    """Validated (network, x, eps, clip, encodings per point)."""
    if norm != "linf":
        raise SwtfError(f"exact verification supports norm='linf' only, got {norm!r}: an L2 ball needs mixed-"
                        "integer quadratic programming, which scipy's milp cannot do; use certified_radius "
                        "for L2")
    network = api.as_network(model)
    check_encodable(network)
    x = api.check_points(network, x)
    eps = api.check_radii(eps, len(x))
    clip = api.check_options(x, norm, "crown", clip)
    box = input_box(x, eps, clip)
    pre = preactivation_bounds(network, x, eps, clip) if len(x) else {}

    def encoding(n):
        return Encoding(network, affine_maps(network), (box[0][n], box[1][n]),
                        {k: (lo[n], hi[n]) for k, (lo, hi) in pre.items()})

    return network, x, eps, clip, box, encoding


def _check_time_limit(time_limit):
    if not (np.isfinite(time_limit) and time_limit > 0):
        raise SwtfError(f"time_limit must be a positive number of seconds, got {time_limit}")


def _solve_rows(model, x, eps, rows, clip, time_limit):
    """Minima of <rows[n, s], output> over each point's ball: (values, bounds, points), each MILP optimal."""
    _check_time_limit(time_limit)
    network, x, eps, clip, box, encoding = _prepare(model, x, eps, clip)
    values, bounds = np.empty(rows.shape[:2]), np.empty(rows.shape[:2])
    points = np.empty(rows.shape[:2] + network.input_shape)
    for n in range(len(x)):
        problem, deadline = encoding(n), time.perf_counter() + time_limit
        for s, row in enumerate(rows[n]):
            solution = problem.minimize(row, deadline - time.perf_counter())
            if solution.status != "optimal":
                raise SwtfError(f"the MILP of point {n} did not reach optimality ({solution.message}); raise "
                                "time_limit or use a smaller network")
            points[n, s] = np.clip(solution.point, box[0][n], box[1][n])
            bounds[n, s] = solution.bound
        values[n] = np.sum(rows[n] * forward(network, points[n]), axis=1)
    return values, bounds, points


def exact_margin_bounds(model, x, y, eps, *, clip=(0.0, 1.0), time_limit=60.0):
    """MILP-optimal minimum of every margin f_y - f_j over the L-inf ball of each point.

    Args:
      model: a Keras model, a SavedModel path, or a `Network`.
      x: (N, *input_shape) points; y: (N,) integer labels; eps: radius (scalar or per point).
      clip: the input domain (low, high) intersected with the ball, or None.
      time_limit: seconds per point, shared by its MILPs.

    Returns:
      `ExactBounds` with (N, K) `value` and `bound` (the entry j = y is +inf, as in `margin_bounds`)
      and (N, K, *input_shape) `points` attaining `value`.

    Raises:
      SwtfError: if a MILP does not reach optimality within the time limit.
    """
    network = api.as_network(model)
    y = api.check_labels(y, len(np.asarray(x)), network.output_size)
    rows = specs.margin_spec(y, network.output_size, tf.float64).numpy()
    values, bounds, points = _solve_rows(network, x, eps, rows, clip, time_limit)
    values[np.arange(len(y)), y] = bounds[np.arange(len(y)), y] = np.inf
    return ExactBounds(values, bounds, points)


def exact_logit_bounds(model, x, eps, *, clip=(0.0, 1.0), time_limit=60.0):
    """MILP-optimal minimum and maximum of every logit over the L-inf ball of each point.

    Arguments as for `exact_margin_bounds`. Returns `(lower, upper)`, two `ExactBounds` with (N, K)
    entries: `lower.value` the attained minima (`lower.bound` below them), `upper.value` the attained
    maxima (`upper.bound` above them).
    """
    network = api.as_network(model)
    k = network.output_size
    rows = specs.logit_spec(len(np.asarray(x)), k, tf.float64).numpy()
    values, bounds, points = _solve_rows(network, x, eps, rows, clip, time_limit)
    return (ExactBounds(values[:, :k], bounds[:, :k], points[:, :k]),
            ExactBounds(-values[:, k:], -bounds[:, k:], points[:, k:]))


def _float32_logits(model, network, x):
    """The model's own float32 logits (a Keras model), or the network's evaluated in float32 by TF."""
    x = tf.constant(x, tf.float32)
    if isinstance(model, keras.Model):
        return np.asarray(model(x, training=False), np.float64)
    return network_function(network, tf.float32)(x).numpy().astype(np.float64)


def misclassified_by_both(model, network, point, label):
    """Whether both the float64 reference and the float32 model misclassify `point` (strictly)."""
    def wrong(logits):
        return np.delete(logits, label).max() > logits[label]

    return wrong(forward(network, point[None])[0]) and wrong(_float32_logits(model, network, point[None])[0])


def _verify_point(model, network, build, x0, label, box, crown, time_limit, tol):
    """`ExactResult` of one point: MILPs for the classes in increasing order of their CROWN bound."""
    start = time.perf_counter()
    logits = forward(network, x0[None])[0]
    margins = logits[label] - logits
    margins[label] = np.inf
    target = int(np.argmin(margins))
    upper = margins[target]
    lower_by_class = np.where(np.arange(len(logits)) == label, np.inf, crown)
    counterexample = x0 if upper < 0 and misclassified_by_both(model, network, x0, label) else None
    reason, problem = "", None
    for j in np.argsort(crown):
        if counterexample is not None:
            break
        if lower_by_class[j] >= upper:
            continue  # this class cannot hold the minimum margin
        row = np.zeros(len(logits))
        row[label], row[j] = 1.0, -1.0
        problem = problem or build()  # built on demand: a point certified by CROWN needs no MILP
        solution = problem.minimize(row, time_limit - (time.perf_counter() - start))
        lower_by_class[j] = max(lower_by_class[j], solution.bound)
        if solution.status != "optimal":
            reason = f"class {j}: {solution.message}"
        if solution.point is None:
            continue
        point = np.clip(solution.point, *box)
        value = float(forward(network, point[None])[0] @ row)
        if value < upper:
            upper, target = value, int(j)
        if value < 0 and misclassified_by_both(model, network, point, label):
            counterexample = point
    lower = float(np.min(lower_by_class))
    if counterexample is not None:
        status, reason = "counterexample", ""
    elif lower > tol:
        status, reason = "certified", ""
    else:
        status = "unknown"
        reason = reason or (f"minimum margin {upper:.3g} is within the solver tolerance ({tol:g}) of 0"
                            if upper >= 0 else "the MILP's negative margin did not reproduce in float32")
    margin = float(upper) if upper - lower <= tol else float("nan")
    return ExactResult(status, margin, lower, float(upper), target, counterexample,
                       time.perf_counter() - start, reason)


def verify_exact(model, x, y, eps, *, norm="linf", clip=(0.0, 1.0), time_limit=60.0, tol=MARGIN_TOL):
    """Complete verification of each point's L-inf ball by mixed-integer linear programming (HiGHS).

    For each class j != y, in increasing order of its CROWN margin bound, a MILP minimises
    f_y - f_j over the ball (classes whose CROWN bound already exceeds the smallest margin found are
    skipped: they cannot hold the minimum). It stops at the first confirmed counterexample.

    What a verdict covers:
      'certified': HiGHS's proven lower bound of every margin (its dual bound, `mip_dual_bound`) is
        above `tol`. The MILP is solved in floating point with feasibility tolerances of 1e-7 (LP) and
        1e-6 (integrality), so its bounds may be optimistic by about those tolerances times the
        weights' magnitudes; `tol` (default 1e-4 logits) leaves room for that on small networks of
        moderate weights. This is exact up to solver tolerances, not an outward-rounded proof like
        `margin_bounds`' (combine both when that matters).
      'counterexample': a point of the ball that the model misclassifies, re-run through the model in
        float32 and the float64 reference `forward`; both must misclassify it, else it is not reported.
      'unknown': the time limit ran out, the solver failed, or the minimum margin lies within `tol` of 0.

    Args:
      model: a Keras model, a SavedModel path, or a `Network`.
      x: (N, *input_shape) points; y: (N,) integer labels; eps: radius, scalar or per point.
      norm: 'linf' only (L2 needs an MIQP and raises SwtfError).
      clip: the input domain (low, high) intersected with the ball, or None.
      time_limit: seconds per point, shared by its MILPs.
      tol: the certification margin above (logit units).

    Returns:
      A list of N `ExactResult`s.
    """
    _check_time_limit(time_limit)
    network, x, eps, clip, box, encoding = _prepare(model, x, eps, clip, norm)
    y = api.check_labels(y, len(x), network.output_size)
    crown = api.margin_lower_bounds(api.verifier_for(network), x, y, eps, "linf", "crown", clip)
    return [_verify_point(model, network, lambda n=n: encoding(n), x[n], y[n], (box[0][n], box[1][n]), crown[n],
                          time_limit, tol) for n in range(len(x))]
