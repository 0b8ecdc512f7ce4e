"""Complete mixed-integer linear encoding of a ReLU / max-pooling `Network` over an L-inf box, solved by HiGHS.

Variables: the input x (bounded by the box), and for every nonlinear neuron that its input bounds do not
settle, an output y and binaries d. Every affine node is substituted away: each node's value is an
affine expression `matrix @ v + offset` of the variables v. Each nonlinear op enters as one rule
(`NONLINEAR_ENCODINGS`, an `Encoding` method), which is exact only if the bounds l, u it is given
really bound its input over the box; the caller passes sound pre-activation bounds (see `exact`),
which `Encoding` widens outward by WIDEN_REL * |bound| + WIDEN_ABS against their own rounding.

relu: stable ReLUs are exact without new variables: y = z when l >= 0, y = 0 when u <= 0. An unstable
ReLU (l < 0 < u), y = max(z, 0), is encoded exactly by the big-M constraints (Tjeng et al., 2019), with
d = 1 meaning "active":

    y >= z,   y >= 0,   y <= z - l * (1 - d),   y <= u * d,   d in {0, 1}.

For d = 1 they force y = z (and z >= 0); for d = 0, y = 0 (and z <= 0).

max_pool: each output y = max_{i in W} x_i over the in-bounds positions W of its window (TF semantics:
padded positions never win), with l_i <= x_i <= u_i. An input with u_i < max_k l_k can never be the
maximum and is dropped; the rest are the candidates C (the input of largest l always is one). If C is
a single input j, it dominates its window and y = x_j, with no new variable. Otherwise y is continuous,
each candidate gets a binary d_i (d_i = 1: "x_i is the maximum"), and (Tjeng et al., 2019; Anderson et
al., 2020, with the big-M constant of their max formulation):

    sum_{i in C} d_i = 1,   y >= x_i,   y <= x_i + (u_{-i} - l_i) * (1 - d_i)   for every i in C,
    max_{i in C} l_i <= y <= max_{i in C} u_i,   d_i in {0, 1},

with u_{-i} = max_{k in C, k != i} u_k. For d_i = 1, y <= x_i <= y, so y = x_i, the largest input;
for d_i = 0 the upper row is slack, because y is some x_k <= u_k <= u_{-i} (k != i) or x_i itself,
and x_i >= l_i. (u_{-i} >= l_i: every candidate has u_k >= max l >= l_i.)

sigmoid and tanh have no exact MILP encoding (they are not piecewise linear): `check_encodable`
refuses them.

An affine op's matrix is found by probing the reference `forward` of that single node with the unit
basis (in chunks, kept sparse), so the encoding agrees with `forward` by construction for every op.
"""

import collections
import dataclasses
import math
import weakref

import numpy as np
from scipy import optimize, sparse

from swtf.certify.max_pool_relaxation import window_table
from swtf.certify.network import ACTIVATIONS, LINEAR_OPS, Network, Node, forward
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


def check_encodable(network):
    """SwtfError (one line) naming the first node whose op the MILP cannot encode exactly."""
    for node in network.nodes:
        if node.op in ("input",) + LINEAR_OPS or node.op in NONLINEAR_ENCODINGS:
            continue
        if node.op in ACTIVATIONS:
            raise SwtfError(f"op {node.op!r} of node {node.name!r} has no exact MILP encoding; use certified_radius "
                            "/ bounds (CROWN) for smooth activations")
        raise SwtfError(f"op {node.op!r} of node {node.name!r} has no MILP encoding")


def _affine_maps(network):
    check_encodable(network)
    return {i: _probe(node, network.nodes[node.inputs[0]].shape) for i, node in enumerate(network.nodes)
            if node.op in LINEAR_OPS and node.op != "add"}


def _widen(lower, upper):
    return (lower - (WIDEN_REL * np.abs(lower) + WIDEN_ABS), upper + (WIDEN_REL * np.abs(upper) + WIDEN_ABS))


def _with_width(matrix, width):
    """CSR `matrix` with `width` columns (at least its own): variables added after it have coefficient 0."""
    matrix = sparse.csr_array(matrix)
    return sparse.csr_array((matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width))


class Encoding:
    """The MILP of one network over one input box; `minimize(c)` solves min <c, output> over it.

    Args:
      network: the `Network` (`check_encodable`: ReLU and max pooling are its only nonlinear ops).
      maps: `affine_maps(network)` (shared by all boxes of one network).
      box: (lower, upper) input bounds, each of the network's input shape.
      preactivation_bounds: {node id: (lower, upper)} sound bounds of the input node of every nonlinear
        node (a ReLU's or a max pool's input).

    Attributes: `output` (the output's `Expression`), `constraints`, `var_lower`, `var_upper`,
    `integrality` (the MILP over the variables: input first, then each rule's y and d), `num_binaries`.
    """

    def __init__(self, network, maps, box, preactivation_bounds):
        self.network = network
        self.input_size = math.prod(network.input_shape)
        inputs = {node.inputs[0] for node in network.nodes if node.op in NONLINEAR_ENCODINGS}
        self._bounds = {k: _widen(*(np.reshape(b, -1).astype(np.float64) for b in preactivation_bounds[k]))
                        for k in inputs}
        lower_in, upper_in = (np.reshape(b, -1).astype(np.float64) for b in box)
        self._var_lower, self._var_upper, self._integer = [lower_in], [upper_in], [np.zeros(self.input_size)]
        self._rows, self._row_lower, self._row_upper = [], [], []
        self._next_var = self.input_size
        values = []
        for i, node in enumerate(network.nodes):
            if node.op == "input":
                values.append(Expression(sparse.eye(self.input_size, format="csr"), np.zeros(self.input_size)))
            elif node.op == "add":
                a, b = (values[j] for j in node.inputs)
                values.append(Expression(self._padded(a.matrix) + self._padded(b.matrix), a.offset + b.offset))
            elif node.op in NONLINEAR_ENCODINGS:
                k = node.inputs[0]
                values.append(NONLINEAR_ENCODINGS[node.op](self, node, values[k], *self._bounds[k]))
            else:
                linear, bias = maps[i]
                parent = values[node.inputs[0]]
                values.append(Expression((linear @ parent.matrix).tocsr(), linear @ parent.offset + bias))
        num_vars = self._next_var
        self.var_lower, self.var_upper = np.concatenate(self._var_lower), np.concatenate(self._var_upper)
        self.integrality = np.concatenate(self._integer)
        self.num_binaries = int(np.sum(self.integrality))
        self.output = Expression(_with_width(values[-1].matrix, num_vars), values[-1].offset)
        self.constraints = optimize.LinearConstraint(
            sparse.vstack([_with_width(r, num_vars) for r in self._rows]).tocsr() if self._rows
            else sparse.csr_array((0, num_vars)),
            np.concatenate(self._row_lower) if self._rows else np.zeros(0),
            np.concatenate(self._row_upper) if self._rows else np.zeros(0))
        del self._rows, self._row_lower, self._row_upper, self._var_lower, self._var_upper, self._integer

    def _padded(self, matrix):
        return _with_width(matrix, self._next_var)

    def _new_variables(self, lower, upper, integer=False):
        """Column indices of len(lower) new variables in [lower, upper] (binaries: [0, 1], integer)."""
        cols = self._next_var + np.arange(len(lower))
        self._next_var += len(lower)
        self._var_lower.append(np.asarray(lower, np.float64))
        self._var_upper.append(np.asarray(upper, np.float64))
        self._integer.append(np.full(len(lower), 1.0 if integer else 0.0))
        return cols

    def _select(self, rows, cols, num_rows):
        """(num_rows, variables) 0/1 matrix picking variable cols[t] in row rows[t]."""
        return sparse.csr_array((np.ones(len(cols)), (rows, cols)), shape=(num_rows, self._next_var))

    def _add_rows(self, matrix, lower, upper):
        """Constraints lower <= matrix @ v <= upper."""
        self._rows.append(matrix)
        self._row_lower.append(lower)
        self._row_upper.append(upper)

    def _relu(self, node, z, lower, upper):
        """The expression of relu(z), adding y and d variables and the big-M rows for unstable neurons."""
        del node
        unstable = np.flatnonzero((lower < 0) & (upper > 0))
        active = (lower >= 0).astype(np.float64)
        matrix = sparse.diags_array(active) @ z.matrix
        offset = active * z.offset
        m = len(unstable)
        if m == 0:
            return Expression(matrix.tocsr(), offset)
        lo, hi = lower[unstable], upper[unstable]
        y_cols = self._new_variables(np.zeros(m), hi)
        d_cols = self._new_variables(np.zeros(m), np.ones(m), integer=True)
        y, d = self._select(np.arange(m), y_cols, m), self._select(np.arange(m), d_cols, m)
        z_rows, z_offset = self._padded(z.matrix[unstable]), z.offset[unstable]
        # y - z >= 0;   y - z - l * d <= -l   (y <= z - l (1 - d));   y - u * d <= 0   (y <= u d).
        self._add_rows(y - z_rows, z_offset, np.full(m, np.inf))
        self._add_rows(y - z_rows - sparse.diags_array(lo) @ d, np.full(m, -np.inf), z_offset - lo)
        self._add_rows(y - sparse.diags_array(hi) @ d, np.full(m, -np.inf), np.zeros(m))
        selector = sparse.csr_array((np.ones(m), (unstable, np.arange(m))), shape=(len(lower), m))
        return Expression((self._padded(matrix) + selector @ y).tocsr(), offset)

    def _max_pool(self, node, z, lower, upper):
        """The expression of max pooling z: y = x_j where x_j dominates its window, else a y variable, one
        binary per candidate and the big-M rows of the module docstring."""
        size = len(lower)
        table = window_table(node.params, self.network.nodes[node.inputs[0]].shape)
        table = table.reshape(-1, table.shape[-1]).astype(np.int64)  # (outputs, window); padding reads `size`
        num_out = len(table)
        lo, hi = np.append(lower, -np.inf)[table], np.append(upper, -np.inf)[table]
        best = lo.max(axis=1)  # max_k l_k: a padded position never has the largest lower bound
        candidate = (table < size) & (hi >= best[:, None])
        single = np.flatnonzero(candidate.sum(axis=1) == 1)
        chosen = table[single, np.argmax(candidate[single], axis=1)]
        pick = sparse.csr_array((np.ones(len(single)), (single, chosen)), shape=(num_out, size))
        matrix, offset = pick @ z.matrix, pick @ z.offset
        multi = np.flatnonzero(candidate.sum(axis=1) > 1)
        m = len(multi)
        if m == 0:
            return Expression(matrix.tocsr(), offset)
        owner, slot = np.nonzero(candidate[multi])  # one (output, window slot) pair per binary
        inputs = table[multi[owner], slot]
        high = np.where(candidate[multi], hi[multi], -np.inf)
        top = high.max(axis=1)
        first = np.argmax(high, axis=1)
        second = np.where(np.arange(high.shape[1]) == first[:, None], -np.inf, high).max(axis=1)
        others = np.where(slot == first[owner], second[owner], top[owner])  # u_{-i}
        big_m = others - lower[inputs]
        y_cols = self._new_variables(best[multi], top)
        d_cols = self._new_variables(np.zeros(len(owner)), np.ones(len(owner)), integer=True)
        y = self._select(np.arange(len(owner)), y_cols[owner], len(owner))  # y of each pair's output
        d = self._select(np.arange(len(owner)), d_cols, len(owner))
        x_rows, x_offset = self._padded(z.matrix[inputs]), z.offset[inputs]
        # sum d = 1;   y - x_i >= 0;   y - x_i + M_i d_i <= M_i   (y <= x_i + M_i (1 - d_i)).
        self._add_rows(self._select(owner, d_cols, m), np.ones(m), np.ones(m))
        self._add_rows(y - x_rows, x_offset, np.full(len(owner), np.inf))
        self._add_rows(y - x_rows + sparse.diags_array(big_m) @ d, np.full(len(owner), -np.inf), x_offset + big_m)
        return Expression((self._padded(matrix) + self._select(multi, y_cols, num_out)).tocsr(), offset)

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

    def minimize_violation(self, rows, thresholds, time_limit, mip_rel_gap=MIP_REL_GAP):
        """min over the box of max_i (<rows[i], output(x)> - thresholds[i]), a `Solution` as `minimize`'s.

        With a free variable t: minimise t subject to <rows[i], output> - thresholds[i] <= t for every i.
        The optimum is <= 0 exactly where some input meets every row <rows[i], output> <= thresholds[i].
        """
        rows = np.asarray(rows, np.float64).reshape(len(thresholds), -1)
        if time_limit <= 0:
            return Solution("time_limit", np.inf, -np.inf, None, "no time left")
        num_vars = self.output.matrix.shape[1]
        violation = sparse.hstack([sparse.csr_array(rows) @ self.output.matrix, -np.ones((len(rows), 1))]).tocsr()
        limits = np.asarray(thresholds, np.float64) - rows @ self.output.offset
        base = self.constraints
        constraints = [optimize.LinearConstraint(sparse.hstack([base.A, sparse.csr_array((base.A.shape[0], 1))]),
                                                 base.lb, base.ub),
                       optimize.LinearConstraint(violation, -np.inf, limits)]
        objective = np.zeros(num_vars + 1)
        objective[-1] = 1.0
        solution, x = self.solve(objective, np.append(self.integrality, 0), np.append(self.var_lower, -np.inf),
                                 np.append(self.var_upper, np.inf), constraints, time_limit, mip_rel_gap)
        return solution._replace(point=None if x is None else x[:self.input_size].reshape(self.network.input_shape))

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


# The nonlinear ops the MILP encodes exactly: op -> the `Encoding` method (self, node, input expression, input
# lower bounds, input upper bounds) giving the node's expression. A new op enters as one entry here.
NONLINEAR_ENCODINGS = {"relu": Encoding._relu, "max_pool": Encoding._max_pool}
