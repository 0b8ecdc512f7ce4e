"""Complete mixed-integer linear encoding of a ReLU `Network` over an L-inf box, solved by HiGHS.

Variables: the input x (bounded by the box), and for every *unstable* ReLU (pre-activation bounds
l < 0 < u) its output y and a binary d. Every affine node is substituted away: each node's value is an
affine expression `matrix @ v + offset` of the variables v. Stable ReLUs are exact without new
variables: y = z when l >= 0, y = 0 when u <= 0. An unstable ReLU y = max(z, 0) is encoded exactly by
the big-M constraints (Tjeng et al., 2019), with d = 1 meaning "active":

    y >= z,   y >= 0,   y <= z - l * (1 - d),   y <= u * d,   d in {0, 1}.

For d = 1 they force y = z (and z >= 0); for d = 0, y = 0 (and z <= 0). They are exact only if l, u
really bound z over the box, so the caller passes sound pre-activation bounds (see `exact`), which
`encode` widens outward by WIDEN_REL * |bound| + WIDEN_ABS against their own rounding.

An affine op's matrix is found by probing the reference `forward` of that single node with the unit
basis (in chunks, kept sparse), so the encoding agrees with `forward` by construction for every op.
"""

import collections
import dataclasses
import math
import weakref

import numpy as np
from scipy import optimize, sparse

from swtf.certify.network import LINEAR_OPS, Network, Node, forward
from swtf.errors import SwtfError

WIDEN_REL = 1e-9
WIDEN_ABS = 1e-12
MIP_REL_GAP = 1e-6
# The largest dense probe block (inputs x outputs) one affine op may produce at once, and the largest
# affine map (nonzeros) the encoder accepts: beyond these a MILP is hopeless anyway.
PROBE_ELEMENTS = 2 ** 22
MAX_NONZEROS = 5 * 10 ** 7

Expression = collections.namedtuple("Expression", "matrix offset")  # value = matrix @ v + offset
Solution = collections.namedtuple("Solution", "status value bound point message")


def _probe(node, in_shape):
    """(L, b) with node(x) = L @ x + b on flattened values: `forward` of the node alone on unit vectors."""
    single = Network([Node("input", (), {}, in_shape, "in"), dataclasses.replace(node, inputs=(0,))])
    size_in = math.prod(in_shape)
    bias = forward(single, np.zeros((1,) + in_shape)).reshape(-1)
    chunk = max(1, PROBE_ELEMENTS // max(1, bias.size))
    blocks, nonzeros = [], 0
    for start in range(0, size_in, chunk):
        stop = min(size_in, start + chunk)
        unit = np.zeros((stop - start, size_in))
        unit[np.arange(stop - start), np.arange(start, stop)] = 1.0
        block = sparse.csr_array(forward(single, unit.reshape((-1,) + in_shape)).reshape(stop - start, -1) - bias)
        nonzeros += block.nnz
        if nonzeros > MAX_NONZEROS:
            raise SwtfError(f"layer {node.name!r} is too large for exact (MILP) verification: more than "
                            f"{MAX_NONZEROS:,} weights; use certified_radius instead")
        blocks.append(block)
    return sparse.vstack(blocks).T.tocsr(), bias


_MAPS = weakref.WeakKeyDictionary()  # Network -> its affine maps, while it lives


def affine_maps(network):
    """{node id: (L, b)} for every single-input affine node of `network` (the add op needs none), computed
    once per network (every box and point of it shares them)."""
    if network not in _MAPS:
        _MAPS[network] = _affine_maps(network)
    return _MAPS[network]


def _affine_maps(network):
    maps = {}
    for i, node in enumerate(network.nodes):
        if node.op not in LINEAR_OPS and node.op not in ("input", "relu"):
            raise SwtfError(f"op {node.op!r} of node {node.name!r} has no MILP encoding")
        if node.op in LINEAR_OPS and node.op != "add":
            maps[i] = _probe(node, network.nodes[node.inputs[0]].shape)
    return maps


def _widen(lower, upper):
    return (lower - (WIDEN_REL * np.abs(lower) + WIDEN_ABS), upper + (WIDEN_REL * np.abs(upper) + WIDEN_ABS))


class Encoding:
    """The MILP of one network over one input box; `minimize(c)` solves min <c, output> over it.

    Args:
      network: the `Network`.
      maps: `affine_maps(network)` (shared by all boxes of one network).
      box: (lower, upper) input bounds, each of the network's input shape.
      preactivation_bounds: {node id: (lower, upper)} sound bounds of every ReLU input node.
    """

    def __init__(self, network, maps, box, preactivation_bounds):
        self.network = network
        self.input_size = math.prod(network.input_shape)
        relu_inputs = [node.inputs[0] for node in network.nodes if node.op == "relu"]
        self._bounds = {k: _widen(*(np.reshape(b, -1).astype(np.float64) for b in preactivation_bounds[k]))
                        for k in relu_inputs}
        unstable = {k: np.flatnonzero((lo < 0) & (hi > 0)) for k, (lo, hi) in self._bounds.items()}
        self.num_binaries = sum(len(u) for u in unstable.values())
        num_vars = self.input_size + 2 * self.num_binaries
        lower_in, upper_in = (np.reshape(b, -1).astype(np.float64) for b in box)
        self.var_lower = np.concatenate([lower_in, np.zeros(2 * self.num_binaries)])
        self.var_upper = np.concatenate([upper_in, np.zeros(2 * self.num_binaries)])
        self.integrality = np.zeros(num_vars)
        self._rows, self._row_lower, self._row_upper = [], [], []
        self._next_var = self.input_size
        values = []
        for i, node in enumerate(network.nodes):
            if node.op == "input":
                values.append(Expression(sparse.eye(self.input_size, num_vars, format="csr"),
                                         np.zeros(self.input_size)))
            elif node.op == "add":
                a, b = (values[j] for j in node.inputs)
                values.append(Expression(a.matrix + b.matrix, a.offset + b.offset))
            elif node.op == "relu":
                k = node.inputs[0]
                values.append(self._relu(values[k], *self._bounds[k], unstable[k]))
            else:
                linear, bias = maps[i]
                parent = values[node.inputs[0]]
                values.append(Expression((linear @ parent.matrix).tocsr(), linear @ parent.offset + bias))
        self.output = values[-1]
        self.constraints = optimize.LinearConstraint(
            sparse.vstack(self._rows).tocsr() if self._rows else sparse.csr_array((0, num_vars)),
            np.concatenate(self._row_lower) if self._rows else np.zeros(0),
            np.concatenate(self._row_upper) if self._rows else np.zeros(0))
        del self._rows, self._row_lower, self._row_upper

    def _relu(self, z, lower, upper, unstable):
        """The expression of relu(z), adding y and d variables and the big-M rows for unstable neurons."""
        active = (lower >= 0).astype(np.float64)
        matrix = sparse.diags_array(active) @ z.matrix
        offset = active * z.offset
        m = len(unstable)
        if m == 0:
            return Expression(matrix.tocsr(), offset)
        num_vars = z.matrix.shape[1]
        y_cols = self._next_var + np.arange(m)
        d_cols = y_cols + m
        self._next_var += 2 * m
        lo, hi = lower[unstable], upper[unstable]
        self.var_upper[y_cols] = hi
        self.var_upper[d_cols] = 1.0
        self.integrality[d_cols] = 1
        y = sparse.csr_array((np.ones(m), (np.arange(m), y_cols)), shape=(m, num_vars))
        d = sparse.csr_array((np.ones(m), (np.arange(m), d_cols)), shape=(m, num_vars))
        z_rows, z_offset = z.matrix[unstable], z.offset[unstable]
        # y - z >= 0;   y - z - l * d <= -l   (y <= z - l (1 - d));   y - u * d <= 0   (y <= u d).
        self._rows += [y - z_rows, y - z_rows - sparse.diags_array(lo) @ d, y - sparse.diags_array(hi) @ d]
        self._row_lower += [z_offset, np.full(m, -np.inf), np.full(m, -np.inf)]
        self._row_upper += [np.full(m, np.inf), z_offset - lo, np.zeros(m)]
        selector = sparse.csr_array((np.ones(m), (unstable, np.arange(m))), shape=(len(lower), m))
        return Expression((matrix + selector @ y).tocsr(), offset)

    def minimize(self, c, time_limit, mip_rel_gap=MIP_REL_GAP):
        """min over the box of <c, output(x)> for a vector `c` over the flattened output.

        Returns a `Solution`: status 'optimal', 'time_limit' or 'failed'; `value` the objective of the
        best point found (inf if none), `bound` HiGHS's proven lower bound (its dual bound; -inf if
        none), `point` the input part of the best solution (None if none) and the solver's message.
        """
        c = np.asarray(c, np.float64).reshape(-1)
        if time_limit <= 0:
            return Solution("time_limit", np.inf, -np.inf, None, "no time left")
        solution, x = self.solve(self.output.matrix.T @ c, self.integrality, self.var_lower, self.var_upper,
                                 self.constraints, time_limit, mip_rel_gap)
        constant = float(c @ self.output.offset)
        return solution._replace(value=solution.value + constant, bound=solution.bound + constant,
                                   point=None if x is None else x[:self.input_size].reshape(self.network.input_shape))

    def solve(self, objective, integrality, var_lower, var_upper, constraints, time_limit, mip_rel_gap):
        """SciPy's milp (HiGHS) on this encoding's variables (or an extension of them): a `Solution` with
        `point` None, and the solution vector (None if none was found)."""
        result = optimize.milp(objective, integrality=integrality, bounds=optimize.Bounds(var_lower, var_upper),
                               constraints=constraints,
                               options={"time_limit": float(time_limit), "mip_rel_gap": mip_rel_gap, "disp": False})
        status = {0: "optimal", 1: "time_limit"}.get(result.status, "failed")
        found = result.x is not None
        dual = getattr(result, "mip_dual_bound", None)
        if status == "optimal" and self.num_binaries == 0:
            dual = result.fun  # a pure LP: optimal means the bound is the value itself
        bound = -np.inf if dual is None or not np.isfinite(dual) else float(dual)
        return Solution(status, float(result.fun) if found else np.inf, bound, None, result.message), result.x
