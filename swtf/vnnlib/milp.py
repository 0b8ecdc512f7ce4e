"""Complete check of one disjunct by MILP: the big-M encoding of `swtf.certify.milp` plus its output rows.

For rows `matrix @ y <= offset` over the box, with t a free variable:

    minimise t   subject to   matrix_i @ y(v) - offset_i <= t  for every row i,   v in the encoding,

so the optimum t* is the smallest achievable largest violation. t* <= 0 (< 0 for strict rows) at a
point means that point meets the disjunct; HiGHS's proven lower bound of t* above `MILP_TOL` refutes
the disjunct (exact up to solver tolerances, as for `swtf.certify.verify_exact`).
"""

import time

from swtf.certify.exact import MARGIN_TOL, box_preactivation_bounds
from swtf.certify.milp import MIP_REL_GAP, Encoding, affine_maps
from swtf.vnnlib.incomplete import network_box

MILP_TOL = MARGIN_TOL
SIGN_GAP = 0.9


def encode(net, disjunct):
    """The MILP `Encoding` of the network over the disjunct's box (pre-activation bounds: CROWN and IBP)."""
    network = net.network
    box = network_box(net, disjunct)
    bounds = box_preactivation_bounds(network, box)
    return Encoding(network, affine_maps(network), tuple(b.numpy()[0] for b in box),
                    {k: (lo[0], hi[0]) for k, (lo, hi) in bounds.items()})


def decide(net, encoding, disjunct, time_limit):
    """`Solution` of min t, stopped as soon as its sign is settled where possible.

    A first solve stops at relative gap SIGN_GAP, i.e. once the proven bound is above (1 - SIGN_GAP) times
    a positive optimum; only if that leaves the sign open (a bound of at most MILP_TOL and no point of
    non-positive value) is the problem solved again to MIP_REL_GAP in the remaining time.
    """
    deadline = time.perf_counter() + time_limit
    solution = minimize_violation(net, encoding, disjunct, time_limit, SIGN_GAP)
    if solution.status == "optimal" and solution.bound <= MILP_TOL and not solution.value <= 0:
        solution = minimize_violation(net, encoding, disjunct, deadline - time.perf_counter(), MIP_REL_GAP)
    return solution


def minimize_violation(net, encoding, disjunct, time_limit, gap=MIP_REL_GAP):
    """`Solution` of min t (see the module docstring) to relative gap `gap`; `point` in ONNX input order."""
    rows = net.output_rows(disjunct.matrix).reshape(len(disjunct.offset), -1)
    solution = encoding.minimize_violation(rows, disjunct.offset, time_limit, gap)
    return solution._replace(point=None if solution.point is None else net.from_network(solution.point[None])[0])
