"""`Verifier`: the bound methods for one `Network` in one dtype, with their compiled TF functions.

Methods (each gives lower bounds of spec rows <c, output>; upper bounds are lower bounds of -c):
  ibp          interval bounds through every node, the spec folded into the last affine node;
  crown        full CROWN: the bounds of every ReLU's input are themselves computed by a backward
               CROWN pass from that node (in topological order), then a backward pass from the output;
  crown-ibp    IBP bounds for the ReLU inputs, CROWN for the final spec;
  alpha-crown  alpha-CROWN as auto_LiRPA's default: the lower slopes of every backward pass, the ones bounding
               intermediate nodes included, optimised jointly for the final bound (`full_alpha_crown`);
  alpha-crown-fixed  full-CROWN intermediate bounds, only the final pass's lower slopes optimised
               (`alpha_crown`): cheaper, and what branch and bound uses per subdomain.

Under an L-inf box, the pre-activation bounds of a node reached from the input by a chain of single-input
affine ops with at most one mixing op (dense, conv2d, avg_pool; the others are coordinatewise) are
exact by interval arithmetic, so full CROWN takes them from IBP instead of a backward pass per neuron
(auto_LiRPA does the same for the first linear layer); the numbers are the same.

Under an L2 ball, IBP starts from exact bounds of the first affine nodes (the nodes that depend on the
input only through affine ops, where a non-affine op reads them): their backward pass involves no
relaxation, so they are the exact ranges, as an L2 interval propagation through a first linear layer
gives. Intermediate CROWN passes batch the rows of the identity spec in chunks bounded by MAX_ELEMENTS.

Full CROWN's intermediate passes (by default, `skip_stable=True`) bound only the neurons whose sign
CROWN itself could leave undecided: an interval pass from the bounds already known encloses CROWN's
bounds of the node (`sparse_crown`), and neurons stable under that enclosure are stable under CROWN,
so their relaxation is already fixed; the relaxations, hence all bounds, are those of
`skip_stable=False`, which bounds every neuron (up to float rounding). The stable neurons keep the
enclosure as their (looser, same-sign) bounds; the unstable ones carry exact CROWN bounds. Intermediate
bounds are never intersected with IBP (that would be tighter than full CROWN, and not what auto_LiRPA's
CROWN computes without its sparse reference bounds).

A neuron's relaxation needs both CROWN bounds only if it is unstable: each undecided neuron first gets
the side more likely to prove it stable (its lower bound if the enclosure leans positive, else its upper
bound), and only the neurons that side leaves undecided get the other one; the side not computed keeps
the enclosure's value. Each (point, neuron, side) is one backward row, with its point's input set and
relaxations gathered, so the work follows each point's own count rather than the largest. Rows go in
chunks of about CHUNK_ELEMENTS coefficients (cache-sized); chunk widths come from a small set of values
and the last chunk is padded, so each start node compiles a handful of graphs, not one per call. Where
the start node is a convolution, its rows travel back as receptive-field patches (`patches`) as long as a
patch is smaller than its feature map; otherwise, where the start node is a dense or convolution layer
whose transposed map fits in MAX_START_ROWS, a unit row's first backward step is a row of that map (a
gather) instead of a transposed convolution.

Early stop (GPUPoly's early termination, Mueller et al. 2021): where the rows of a node pass a second
ReLU on their way back (the first one's relaxed output box gives the enclosure itself), each row is first
carried only down to that ReLU's output and concretised over its box [lower_slope * l, relu(u)]
(the rule's `output_box` in `nonlinear_ops`; any nonlinear node serves as the stop). By the enclosure's argument that partial bound is at most the row's
CROWN bound, and a sound bound by itself; a row it proves non-negative is decided (the neuron is stable
under CROWN too, so the relaxations stay those of full CROWN) and keeps it, and only the others get the
full pass. On a CIFAR-size convex_cnn 75-83% of the dense layer's rows stop there.
"""

import functools
import math

import tensorflow as tf

from swtf.certify import alpha_crown, full_alpha_crown, patches
from swtf.certify.backward_crown import backward_lower_bound, neuron_bounds
from swtf.certify.ibp import interval_bounds, interval_spec_lower_bound
from swtf.certify.linear_ops import tensor_nodes
from swtf.certify.network import LINEAR_OPS
from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.perturbation import LinfBox
from swtf.certify.sparse_crown import apply_row_bounds, undecided_rows

METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown", "alpha-crown-fixed")

# Largest coefficient tensor (elements) one intermediate CROWN chunk may create: 2**23 float64 = 64 MiB.
MAX_ELEMENTS = 2 ** 23

# Coefficient elements one pass over undecided neurons aims at: 2**20 float64 = 8 MiB stays in cache, and
# measured about twice as fast per row as 2**23 on the digits convex_cnn.
CHUNK_ELEMENTS = 2 ** 20

# Largest transposed linear map (elements) kept per start node for the gather start: 2**24 float64 = 128 MiB.
MAX_START_ROWS = 2 ** 24

# Networks from this many nonlinear neurons (ReLU, sigmoid, tanh, max pooling outputs) run the rows' elementwise steps as XLA-fused kernels (`backward_crown`).
# Measured: a CIFAR-size convex_cnn (~6,000 ReLUs) bounds its dense rows 1.4x and its patch rows 1.5x
# faster fused, while the default digits study's certify stage (nine models of at most ~500 ReLUs) took
# 34 s fused against 30 s unfused: compiling the kernels for each model cost more than they saved.
# With one fused shape per node (`_chunked_row_bounds`), a CROWN radius search on 200 CIFAR test points
# (convex_cnn, 1 epoch) took 11.8 s on a first call (11.5 s unfused), 5.9 s on a repeat (8.3 s unfused),
# and 0.9 s for 20 further points; per-shape kernels had taken 12.2 s, 6.1 s and 6.1 s (recompiling).
FUSED_MIN_NEURONS = 2048


def _input_affine_frontier(network):
    """Ids of nodes affine in the input that a non-affine node (or nothing: the output) reads."""
    affine = {0}
    for i, node in enumerate(network.nodes[1:], start=1):
        if node.op in LINEAR_OPS and all(j in affine for j in node.inputs):
            affine.add(i)
    readers = network.consumers()
    return [i for i in sorted(affine - {0}) if not readers[i] or any(r not in affine for r in readers[i])]


def _interval_exact_nodes(network):
    """Ids of nodes whose interval bounds over a box are exact (see the module docstring)."""
    mixing = {0: 0}
    for i, node in enumerate(network.nodes[1:], start=1):
        if node.op in ("reshape", "affine") and node.inputs[0] in mixing:
            mixing[i] = mixing[node.inputs[0]]
        elif node.op in ("dense", "conv2d", "avg_pool") and mixing.get(node.inputs[0]) == 0:
            mixing[i] = 1
    return set(mixing) - {0}


def _early_stop(nodes, start):
    """The second nonlinear node on the way back from node `start` if every node down to it has one input
    (so every backward path passes through it), else 0: where rows of `start` are first stopped (module
    docstring)."""
    seen, at = 0, start
    while at != 0 and len(nodes[at].inputs) == 1:
        if nodes[at].op in NONLINEAR_RULES:
            seen += 1
            if seen == 2:
                return at
        at = nodes[at].inputs[0]
    return 0


def _bucket(count):
    """The smallest of 1, 1.25, 1.5 or 1.75 times a power of two that is at least `count`."""
    return min(w for w in ((m << k) >> 2 for k in range(count.bit_length() + 2) for m in (4, 5, 6, 7)) if w >= count)


def _pad_points(values, size):
    """A namedtuple of (N, ...) per-point tensors padded with zero points to `size` along the first axis."""
    return type(values)(*(tf.pad(t, [[0, size - int(t.shape[0])]] + [[0, 0]] * (t.shape.rank - 1)) for t in values))


def _chunk_width(count, largest):
    """Rows per chunk for `count` rows, at most `largest`: as few chunks as `largest` allows, of the
    narrowest width among `largest` and 1, 1.25, 1.5 or 1.75 times powers of two (few shapes to compile)."""
    widths = {largest} | {(m << k) >> 2 for k in range(largest.bit_length() + 1) for m in (4, 5, 6, 7)}
    widths = {w for w in widths if 1 <= w <= largest}
    return min(widths, key=lambda w: (-(-count // w), w))


class Verifier:
    """Computes certified bounds for one network; build once, call many times (e.g. in bisection)."""

    def __init__(self, network, dtype=tf.float64, live=False, skip_stable=True, patch_rows=True, early_stop=True,
                 fused=None):
        """`live`: bound with the weights' source variables, read at every call (see `tensor_nodes`).

        `skip_stable`: full CROWN bounds only the neurons it could leave unstable (same numbers; see the
        module docstring); False bounds every ReLU input neuron by its own backward pass.

        `patch_rows`: undecided neurons of convolutions are bounded with receptive-field patches
        (`patches`; same numbers); False carries every row as a dense tensor of the whole feature map.

        `early_stop`: rows first stop at a second ReLU where one is on their way (module docstring; the
        same relaxations); False carries every row to the input.

        `fused`: XLA-fused elementwise steps for the rows (same numbers up to rounding); None (default) fuses
        on networks of at least FUSED_MIN_NEURONS nonlinear neurons.
        """
        self.network = network
        self.dtype = dtype
        self.live = live
        self.skip_stable = skip_stable
        self.fused = network.nonlinear_count >= FUSED_MIN_NEURONS if fused is None else fused
        self._points_bucket = 1  # the padded point count of fused rows (see `_chunked_row_bounds`)
        # Eager callers (certified_radius) vary the batch from call to call, so the batch dimension is relaxed
        # after a second shape. Live verifiers run inside the training step's own tf.function, where relaxed
        # nested functions failed to trace (TypeError on the input set's fields in a 30-epoch certified run).
        self._relax_batch = not live
        self.nodes = tensor_nodes(network, dtype, live)
        self.nonlinear_ids = [i for i, node in enumerate(self.nodes) if node.op in NONLINEAR_RULES]
        # Nonlinear nodes read by another one (a ReLU before max pooling): their input's bounds are used as
        # bounds of every neuron, not only to decide signs, so all of them get CROWN's own bounds.
        self._read_by_nonlinear = {self.nodes[r].inputs[0] for r in self.nonlinear_ids}
        self._l2_ibp_frontier = _input_affine_frontier(network)
        self._interval_exact = _interval_exact_nodes(network)
        self._backward = {}
        self._neurons = {}
        self._undecided = {}
        self._start_rows = {}
        self._patch_plans = {i: patches.patch_plan(self.nodes, i) if patch_rows else None
                             for i in range(len(self.nodes))}
        self._early_stops = {i: _early_stop(self.nodes, i) if early_stop else 0 for i in range(len(self.nodes))}
        self._alpha_step = tf.function(functools.partial(alpha_crown.bound_and_gradient,
                                                         self._backward_from(network.output_id)),
                                       autograph=False, reduce_retracing=self._relax_batch)
        self._ibp = tf.function(functools.partial(interval_bounds, self.nodes), autograph=False,
                                reduce_retracing=self._relax_batch)
        self._ibp_spec = tf.function(self._ibp_spec_impl, autograph=False, reduce_retracing=self._relax_batch)
        self._apply_row_bounds = tf.function(apply_row_bounds, autograph=False, reduce_retracing=self._relax_batch)

    def _backward_from(self, start):
        if start not in self._backward:
            self._backward[start] = tf.function(functools.partial(backward_lower_bound, self.nodes, start),
                                                 autograph=False, reduce_retracing=self._relax_batch)
        return self._backward[start]

    def _ibp_spec_impl(self, inputs, spec, overrides):
        return interval_spec_lower_bound(self.nodes, interval_bounds(self.nodes, inputs, overrides), spec)

    def node_bounds(self, node_id, inputs, relaxations):
        """(lower, upper), each (N, *shape), of node `node_id` by backward CROWN with `relaxations`."""
        if node_id == 0:
            return inputs.box()
        shape = self.nodes[node_id].shape
        size = math.prod(shape)
        n = int(inputs[0].shape[0])
        widest = max(math.prod(node.shape) for node in self.nodes[:node_id + 1])
        chunk = max(1, min(size, MAX_ELEMENTS // (2 * n * widest)))
        relevant = {i: r for i, r in relaxations.items() if i < node_id}
        lowers, uppers = [], []
        for start in range(0, size, chunk):
            rows = tf.one_hot(tf.range(start, start + chunk), size, dtype=self.dtype)  # zero past the end
            rows = tf.reshape(rows, (chunk,) + shape)
            spec = tf.broadcast_to(tf.concat([rows, -rows], 0)[None], (n, 2 * chunk) + shape)
            lower = self._backward_from(node_id)(spec, inputs, relevant)
            lowers.append(lower[:, :chunk])
            uppers.append(-lower[:, chunk:])
        lower = tf.concat(lowers, 1)[:, :size]
        upper = tf.concat(uppers, 1)[:, :size]
        return tf.reshape(lower, (n,) + shape), tf.reshape(upper, (n,) + shape)

    def _neurons_from(self, start, stop=0, fused=False):
        if (start, stop, fused) not in self._neurons:
            plan = self._patch_plans[start]
            if plan is not None:
                bounds = functools.partial(patches.patch_neuron_bounds, self.nodes, plan, stop=stop, fused=fused)
            else:
                bounds = functools.partial(neuron_bounds, self.nodes, start, self._transposed_map(start), stop=stop,
                                           fused=fused)
            self._neurons[start, stop, fused] = tf.function(bounds, autograph=False,
                                                            reduce_retracing=self._relax_batch and not fused)
        return self._neurons[start, stop, fused]

    def _row_elements(self, start):
        """Largest coefficient tensor (elements) one backward row from node `start` creates."""
        plan = self._patch_plans[start]
        if plan is not None:
            return plan.row_elements(self.nodes)
        return max(math.prod(node.shape) for node in self.nodes[:start + 1])

    def _transposed_map(self, start):
        """(size, *input shape): the transposed linear map of a dense/conv2d start node, or None (too big,
        another op, or live weights, which change between calls)."""
        node = self.nodes[start]
        if node.op not in ("dense", "conv2d") or self.live:
            return None
        size, fan_in = math.prod(node.shape), math.prod(node.input_shapes[0])
        if size * fan_in > MAX_START_ROWS:
            return None
        if start not in self._start_rows:
            rows, step = [], max(1, MAX_ELEMENTS // max(fan_in, size))
            for begin in range(0, size, step):
                unit = tf.one_hot(tf.range(begin, min(size, begin + step)), size, dtype=self.dtype)
                rows.append(node.transpose(tf.reshape(unit, (-1,) + node.shape))[0])
            self._start_rows[start] = tf.concat(rows, 0)
        return self._start_rows[start]

    def _undecided_rows_of(self, target):
        if target not in self._undecided:
            self._undecided[target] = tf.function(functools.partial(undecided_rows, self.nodes, target),
                                                  autograph=False, reduce_retracing=self._relax_batch)
        return self._undecided[target]

    def _chunked_row_bounds(self, node_id, rows, inputs, relaxations, stop=0):
        """(R,) lower bounds of sign * z[point, index] for `rows` (R, 3) of (point, index, sign), by
        backward CROWN down to node `stop` (`inputs`: the set of its value) in chunks of rows.

        XLA compiles a fused kernel for every shape it meets, so fused rows keep one shape per node: chunks
        of the full width, with the points padded to the most this verifier has seen (rows never read the
        padding). The rows left over, fewer than one full chunk, take the unfused path, whose graphs relax
        their shapes instead of compiling new ones."""
        count, largest = int(rows.shape[0]), max(1, CHUNK_ELEMENTS // self._row_elements(node_id))
        bounds, full = [], count // largest * largest if self.fused else 0
        if full:
            self._points_bucket = max(self._points_bucket, _bucket(int(inputs[0].shape[0])))
            padded = _pad_points(inputs, self._points_bucket)
            padded_relaxations = {i: _pad_points(r, self._points_bucket) for i, r in relaxations.items()}
            for begin in range(0, full, largest):
                bounds.append(self._neurons_from(node_id, stop, fused=True)(rows[begin:begin + largest], padded,
                                                                            padded_relaxations))
        if full < count:
            chunk = _chunk_width(count - full, largest)
            for begin in range(full, count, chunk):
                part = rows[begin:begin + chunk]
                if part.shape[0] < chunk:  # pad with repeats of the first rows (bounded, then dropped)
                    part = tf.concat([part, rows[:chunk - part.shape[0]]], 0)
                bounds.append(self._neurons_from(node_id, stop)(part, inputs, relaxations))
        return tf.concat(bounds, 0)[:count]

    def _row_bounds(self, node_id, rows, inputs, known, relaxations, early_stop):
        """(R,) lower bounds of sign * z[point, index] for `rows` (R, 3) of (point, index, sign): CROWN's,
        or, with `early_stop`, where the early stop (module docstring) proves one non-negative, that
        smaller bound."""
        stop = self._early_stops[node_id] if early_stop else 0
        if stop == 0:
            return self._chunked_row_bounds(node_id, rows, inputs, relaxations)
        box = LinfBox(*NONLINEAR_RULES[self.nodes[stop].op].output_box(relaxations[stop],
                                                                         *known[self.nodes[stop].inputs[0]]))
        early = self._chunked_row_bounds(node_id, rows, box, relaxations, stop)
        open_ = tf.where(early < 0)
        if int(open_.shape[0]) == 0:
            return early
        full = self._chunked_row_bounds(node_id, tf.gather_nd(rows, open_), inputs, relaxations)
        return tf.tensor_scatter_nd_update(early, open_, full)

    def undecided_node_bounds(self, node_id, inputs, known, relaxations):
        """(lower, upper) of node `node_id` enclosing its full-CROWN bounds, equal to them on each side
        CROWN had to compute to decide a neuron's sign (see `sparse_crown` and the module docstring) unless
        the early stop decided it first; `known` as for `sparse_crown.crown_enclosure`."""
        relevant = {i: r for i, r in relaxations.items() if i < node_id}
        lower, upper, rows = self._undecided_rows_of(node_id)(inputs, {i: b for i, b in known.items() if i < node_id},
                                                              relevant)
        # First each undecided neuron's likelier deciding side, then the other side of those it left undecided.
        for side in range(2):
            if int(rows.shape[0]) == 0:
                break
            # The early stop rarely decides a neuron its likelier side left undecided: only the first side.
            bounds = self._row_bounds(node_id, rows, inputs, known, relevant, early_stop=side == 0)
            lower, upper, rows = self._apply_row_bounds(lower, upper, rows, bounds)
        shape = self.nodes[node_id].shape
        return tf.reshape(lower, (-1,) + shape), tf.reshape(upper, (-1,) + shape)

    def every_neuron_bounds(self, node_id, inputs, relaxations):
        """(lower, upper), each (N, *shape), of node `node_id` by backward CROWN: the numbers of `node_bounds`,
        computed as one row per (point, neuron, side), so that convolutions travel back as patches."""
        shape = self.nodes[node_id].shape
        n, size = int(inputs[0].shape[0]), math.prod(shape)
        pairs = tf.cast(tf.where(tf.ones([n, size], tf.bool)), tf.int32)
        rows = tf.concat([tf.concat([pairs, tf.fill([n * size, 1], sign)], 1) for sign in (1, -1)], 0)
        relevant = {i: r for i, r in relaxations.items() if i < node_id}
        bounds = tf.reshape(self._chunked_row_bounds(node_id, rows, inputs, relevant), (2, n) + shape)
        return bounds[0], -bounds[1]

    def relax(self, node_id, bounds):
        """The relaxation of nonlinear node `node_id` from `bounds` {node id: (lower, upper)} of its input."""
        node = self.nodes[node_id]
        return NONLINEAR_RULES[node.op].relax(node.params, node.input_shapes[0], *bounds[node.inputs[0]])

    def intermediate_bounds(self, inputs, tighten_with_ibp=False):
        """Full-CROWN bounds of the input of every nonlinear node and the relaxations they give:
        ({input node id: (lower, upper)}, {nonlinear node id: relaxation}).

        A ReLU's input gets CROWN bounds of the neurons CROWN could leave unstable (`skip_stable`, module
        docstring); the input of sigmoid, tanh and max pooling (and of a ReLU whose output max pooling reads)
        gets CROWN bounds of every neuron, since its relaxation reads both bounds of each. An input that is
        itself a nonlinear node's output (max pooling after a ReLU) gets that node's interval image of its own
        input's bounds: sound, and at least as tight as CROWN's backward pass through the node, which ends in
        the same input bounds. With `tighten_with_ibp` every bound is intersected with IBP's (tighter than
        full CROWN, as MILP encodings want)."""
        relaxations, bounds, boxes = {}, {}, None
        if not hasattr(inputs, "eps") or tighten_with_ibp:
            boxes = self.interval_bounds(inputs)
        if not hasattr(inputs, "eps"):
            bounds = {k: boxes[k] for k in self._interval_exact}
        for r in self.nonlinear_ids:
            k = self.nodes[r].inputs[0]
            if k not in bounds:
                source = self.nodes[k]
                if source.op in NONLINEAR_RULES:
                    bounds[k] = NONLINEAR_RULES[source.op].interval(source.params, *bounds[source.inputs[0]])
                elif self.skip_stable and self.nodes[r].op == "relu" and r not in self._read_by_nonlinear:
                    bounds[k] = self.undecided_node_bounds(k, inputs, bounds, relaxations)
                else:
                    bounds[k] = self.every_neuron_bounds(k, inputs, relaxations)
                if tighten_with_ibp:
                    bounds[k] = (tf.maximum(bounds[k][0], boxes[k][0]), tf.minimum(bounds[k][1], boxes[k][1]))
            relaxations[r] = self.relax(r, bounds)
        return bounds, relaxations

    def crown_relaxations(self, inputs):
        """The relaxations of every nonlinear node from full-CROWN bounds (`intermediate_bounds`)."""
        return self.intermediate_bounds(inputs)[1]

    def _ibp_overrides(self, inputs):
        if not hasattr(inputs, "eps"):  # a box: plain interval propagation
            return {}
        return {k: self.node_bounds(k, inputs, {}) for k in self._l2_ibp_frontier}

    def interval_bounds(self, inputs):
        """(lower, upper) of every node by IBP."""
        return self._ibp(inputs, self._ibp_overrides(inputs))

    def spec_lower_bounds(self, inputs, spec, method="crown"):
        """(N, S) lower bounds of <spec[n, s], output(x)> over `inputs` by `method` (see METHODS)."""
        if method == "ibp":
            return self._ibp_spec(inputs, spec, self._ibp_overrides(inputs))
        if method == "alpha-crown":
            return full_alpha_crown.optimized_bounds(self, inputs, spec)[0]
        if method == "crown-ibp":
            boxes = self.interval_bounds(inputs)
            relaxations = {r: self.relax(r, boxes) for r in self.nonlinear_ids}
        else:
            relaxations = self.crown_relaxations(inputs)
        if method == "alpha-crown-fixed":
            return alpha_crown.optimized_lower_bound(self._alpha_step, spec, inputs, relaxations)
        return self._backward_from(self.network.output_id)(spec, inputs, relaxations)
