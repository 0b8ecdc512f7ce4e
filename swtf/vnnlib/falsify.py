"""Falsification by projected gradient descent on the network: candidate counterexamples of disjuncts.

For disjunct rows `matrix @ y <= offset`, PGD (`counterexamples.violation_descent`) minimises the largest
violation max_i (matrix_i @ f(x) - offset_i) over the disjunct's box, from the box centre and uniform
random starts. The network runs in float32 TF; candidates are only candidates: the caller re-checks them
on onnxruntime.
"""

import numpy as np

from swtf.certify.counterexamples import violation_descent

STEPS = 100
RESTARTS = 16
_PAD = 1e30  # offset of padding rows: they never hold the maximum


def candidates(net, disjuncts, *, steps=STEPS, restarts=RESTARTS, seed=0):
    """PGD points of the disjuncts, (M, input_size) in ONNX order with their disjunct indices, most
    violating first; only points whose float32 objective is <= 0 are returned."""
    rng = np.random.default_rng(seed)
    num_rows = max(len(d.offset) for d in disjuncts)
    lowers, uppers, rows, offsets, owners = [], [], [], [], []
    for index, d in enumerate(disjuncts):
        matrix = np.zeros((num_rows, net.output_size))
        matrix[:len(d.offset)] = d.matrix
        offset = np.full(num_rows, _PAD)
        offset[:len(d.offset)] = d.offset
        lowers.append(np.repeat(d.lower[None], restarts, 0))
        uppers.append(np.repeat(d.upper[None], restarts, 0))
        rows.append(np.repeat(net.output_rows(matrix).reshape(1, num_rows, -1), restarts, 0))
        offsets.append(np.repeat(offset[None], restarts, 0))
        owners += [index] * restarts
    lower, upper = np.concatenate(lowers), np.concatenate(uppers)
    start = lower + (upper - lower) * rng.random(lower.shape)
    start[::restarts] = (lower[::restarts] + upper[::restarts]) / 2
    x, value = violation_descent(net.network, net.to_network(start), net.to_network(lower), net.to_network(upper),
                                 np.concatenate(rows), np.concatenate(offsets), steps)
    order = [i for i in np.argsort(value) if value[i] <= 0]
    points = net.from_network(x)
    return points[order], np.asarray(owners)[order]
