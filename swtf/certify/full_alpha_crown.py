"""Full alpha-CROWN: the lower ReLU slopes of every backward pass optimised jointly for the final bound.

`alpha_crown` keeps the intermediate (pre-activation) bounds at full CROWN's and optimises only the final
pass's slopes. Tighter intermediate bounds give tighter relaxations (narrower chords, fewer unstable
neurons) and so tighter final bounds; this module also optimises the slopes of the backward passes that
bound the inputs of the nonlinear nodes, as auto_LiRPA's `compute_bounds(method='alpha-CROWN')` does by
default (its `fix_interm_bounds` option only keeps intermediate bounds that are passed in).

The math. For an unstable ReLU neuron (l < 0 < u) every lower slope alpha in [0, 1] gives a valid lower
line relu(x) >= alpha * x on [l, u], so a backward pass with any alphas gives sound bounds, of the final
spec as of any intermediate node. In each iteration the inputs of the nonlinear nodes are re-bounded in
topological order, each by its own backward pass with its own alphas and the relaxations just computed
for the nodes before it; each new bound is intersected with the full-CROWN (reference) bound (max of the
lowers, min of the uppers: both are sound, so the intersection is), and the relaxation is recomputed from
the result. The final spec is bounded with its own alphas. The objective is the sum of the final lower
bounds; its gradient reaches the intermediate alphas through the relaxations (chord slopes and
intercepts, which are differentiable in the bounds). As auto_LiRPA's intersection with reference bounds
does, it passes the gradient of the new bound even where the reference is the tighter one (at the start
both are CROWN's, so a plain max would block the gradient of every neuron whose rounding favours the
reference).

Alphas are separate per point, spec row and neuron, and per start node: the node whose bounds a pass
computes, with one spec row per bounded neuron and side (+e_i, -e_i), as auto_LiRPA's alphas of shape
(2, neurons of the start node, batch, *relu shape) with sparse unstable indices. Bounded neurons: of a
ReLU's input, those unstable under the reference (stable ones keep the reference bounds, their
relaxation is exact); of the input of sigmoid, tanh, max pooling, or a ReLU that max pooling reads, all
of them (the relaxation reads both bounds of each). Rows are padded per point with zero rows to the
largest count. Not re-bounded: nodes exact by IBP under an L-inf box (as in `verifier`), nodes with no
ReLU before them (no alpha changes their bound), and inputs that are a nonlinear node's output (the
rule's interval of its own input's bounds, as `Verifier.intermediate_bounds` does).

Alphas start at CROWN's adaptive slopes, so the first iterate reproduces full CROWN (up to rounding, and
never looser than the reference through the intersection). They are updated by projected Adam
(`projected_adam`) with the constants of `alpha_crown`, every bound evaluated at the projected alphas.
The best finite final bound of every (point, row) and the elementwise best intermediate bounds across
iterations are kept: every iterate is sound, so the best ones are.
"""

import functools
import math
import weakref

import numpy as np
import tensorflow as tf

from swtf.certify import alpha_crown, projected_adam
from swtf.certify.backward_crown import backward_lower_bound
from swtf.certify.nonlinear_ops import NONLINEAR_RULES, OPTIMIZABLE_OPS
from swtf.certify.perturbation import LinfBox
from swtf.errors import SwtfError

# Most alpha elements one call may optimise: 2**25 float64 = 256 MiB, times four with the Adam moments and
# the gradient, plus the backward passes' coefficient tensors of the same size.
MAX_ALPHA_ELEMENTS = 2 ** 25

_STEPS = weakref.WeakKeyDictionary()  # Verifier -> its compiled `_bound_and_gradient`


def _relu_ancestors(nodes, node_id):
    """Ids of the ReLU nodes (optimisable ops) that node `node_id` depends on, ascending."""
    seen, stack = set(), [node_id]
    while stack:
        for j in nodes[stack.pop()].inputs:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return sorted(j for j in seen if nodes[j].op in OPTIMIZABLE_OPS)


def _rows_to_bound(verifier, inputs, reference):
    """{node id: (spec (N, 2U, *shape), position (N, size))} for the nonlinear inputs to re-bound (module
    docstring): rows +e_i then -e_i of the U bounded neurons of each point (zero rows pad the points with
    fewer), and the row of each neuron, U for a neuron not bounded."""
    nodes, rows = verifier.nodes, {}
    for r in verifier.nonlinear_ids:
        k = nodes[r].inputs[0]
        if (k in rows or nodes[k].op in NONLINEAR_RULES or not _relu_ancestors(nodes, k)
                or (isinstance(inputs, LinfBox) and k in verifier._interval_exact)):
            continue
        lower, upper = (tf.reshape(b, [b.shape[0], -1]) for b in reference[k])
        if nodes[r].op == "relu" and r not in verifier._read_by_nonlinear:
            bounded = (lower < 0) & (upper > 0)
        else:
            bounded = tf.ones_like(lower, tf.bool)
        count = int(tf.reduce_max(tf.reduce_sum(tf.cast(bounded, tf.int32), 1)))
        if count == 0:
            continue
        index = tf.argsort(tf.cast(~bounded, tf.int32), axis=1, stable=True)[:, :count]
        unit = tf.one_hot(index, lower.shape[1], dtype=lower.dtype)
        unit *= tf.cast(tf.gather(bounded, index, batch_dims=1), lower.dtype)[..., None]
        spec = tf.reshape(tf.concat([unit, -unit], 1), (lower.shape[0], 2 * count) + nodes[k].shape)
        position = tf.where(bounded, tf.cumsum(tf.cast(bounded, tf.int32), axis=1) - 1, count)
        rows[k] = (spec, position)
    return rows


def _tightest(reference, new, side):
    """max (side 1) or min (side -1) of `reference` and `new`, with the gradient of `new` (module docstring);
    a NaN or infinite `new` keeps the reference and passes no gradient."""
    best = tf.stop_gradient(tf.where(side * new > side * reference, new, reference))
    return best + tf.where(tf.math.is_finite(new), new - tf.stop_gradient(new), tf.zeros_like(new))


def _relaxed_bounds(verifier, inputs, reference, rows, alphas):
    """One iteration's ({input node id: (lower, upper)}, {nonlinear id: relaxation}) (module docstring)."""
    nodes, bounds, relaxations, pending = verifier.nodes, dict(reference), {}, dict(rows)
    for r in verifier.nonlinear_ids:
        k = nodes[r].inputs[0]
        if k in pending:
            spec, position = pending.pop(k)
            lower = backward_lower_bound(nodes, k, spec, inputs, relaxations, alphas[k])
            count, shape = tf.shape(spec)[1] // 2, tf.shape(reference[k][0])
            unbounded = tf.fill([tf.shape(spec)[0], 1], tf.constant(-np.inf, lower.dtype))  # the row U
            lows = tf.gather(tf.concat([lower[:, :count], unbounded], 1), position, batch_dims=1)
            highs = -tf.gather(tf.concat([lower[:, count:], unbounded], 1), position, batch_dims=1)
            bounds[k] = (_tightest(reference[k][0], tf.reshape(lows, shape), 1),
                         _tightest(reference[k][1], tf.reshape(highs, shape), -1))
        elif nodes[k].op in NONLINEAR_RULES:
            source = nodes[k]
            bounds[k] = NONLINEAR_RULES[source.op].interval(source.params, *bounds[source.inputs[0]])
        relaxations[r] = verifier.relax(r, bounds)
    return bounds, relaxations


def _bound_and_gradient(verifier, inputs, spec, reference, rows, alphas):
    """The (N, S) final lower bounds, the intermediate bounds and the gradient of the bounds' sum to `alphas`."""
    with tf.GradientTape() as tape:
        tape.watch(alphas)
        bounds, relaxations = _relaxed_bounds(verifier, inputs, reference, rows, alphas)
        output = verifier.network.output_id
        lower = backward_lower_bound(verifier.nodes, output, spec, inputs, relaxations, alphas[output])
        objective = tf.reduce_sum(lower)
    return lower, bounds, tape.gradient(objective, alphas, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _step(verifier):
    if verifier not in _STEPS:
        # A weak proxy: the compiled step must not keep its verifier (the dictionary's key) alive.
        _STEPS[verifier] = tf.function(functools.partial(_bound_and_gradient, weakref.proxy(verifier)),
                                       autograph=False, reduce_retracing=verifier._relax_batch)
    return _STEPS[verifier]


def _widths(verifier, rows, spec):
    """{start node id: spec rows of its backward pass}."""
    widths = {k: int(rows_k.shape[1]) for k, (rows_k, _) in rows.items()}
    return {**widths, verifier.network.output_id: int(spec.shape[1])}


def _alpha_elements(verifier, rows, spec):
    """How many alphas one call optimises."""
    nodes, points = verifier.nodes, int(spec.shape[0])
    return sum(points * width * math.prod(nodes[j].shape) for k, width in _widths(verifier, rows, spec).items()
               for j in _relu_ancestors(nodes, k))


def _initial_alphas(verifier, relaxations, rows, spec):
    """{start node id: {relu id: (N, rows, *shape)}} at CROWN's adaptive slopes."""
    return {k: alpha_crown.initial_alphas({j: relaxations[j] for j in _relu_ancestors(verifier.nodes, k)}, width)
            for k, width in _widths(verifier, rows, spec).items()}


def _halves(values, n):
    """The first and second half (along the points) of a namedtuple or dict of (N, ...) tensors."""
    half = n // 2
    if isinstance(values, dict):
        return ({k: _halves(v, n)[0] for k, v in values.items()}, {k: _halves(v, n)[1] for k, v in values.items()})
    if isinstance(values, tuple):
        parts = [_halves(v, n) for v in values]
        return type(values)(*(p[0] for p in parts)), type(values)(*(p[1] for p in parts))
    return values[:half], values[half:]


def optimized_bounds(verifier, inputs, spec, steps=alpha_crown.STEPS, learning_rate=alpha_crown.LEARNING_RATE):
    """Full alpha-CROWN lower bounds of `spec` over `inputs` (module docstring).

    Args:
      verifier: the network's `Verifier`.
      inputs: the input set (`LinfBox` or `L2Ball`) of N points.
      spec: (N, S, *output shape) spec rows.
      steps: Adam steps after the CROWN initialisation.
      learning_rate: initial Adam step size, decayed by `alpha_crown.LR_DECAY` per step.

    Returns:
      (lower, bounds, relaxations): the best (N, S) final lower bounds, the best bounds of every nonlinear
      node's input {input node id: (lower, upper)} and their relaxations {nonlinear node id: relaxation}.

    Points are bounded in halves, recursively, while their alphas would exceed MAX_ALPHA_ELEMENTS.

    Raises:
      SwtfError: if the alphas of a single point would exceed MAX_ALPHA_ELEMENTS.
    """
    reference, relaxations = verifier.intermediate_bounds(inputs)
    rows = _rows_to_bound(verifier, inputs, reference)
    elements, n = _alpha_elements(verifier, rows, spec), int(spec.shape[0])
    if elements > MAX_ALPHA_ELEMENTS:
        if n == 1:
            raise SwtfError(f"full alpha-CROWN would optimise {elements:,} slopes for one point (more than "
                            f"{MAX_ALPHA_ELEMENTS:,}); use method='alpha-crown-fixed' (fixed intermediate bounds)")
        parts = [optimized_bounds(verifier, part_inputs, part_spec, steps, learning_rate)
                 for part_inputs, part_spec in zip(_halves(inputs, n), _halves(spec, n))]
        bounds = {k: tuple(tf.concat([p[1][k][side] for p in parts], 0) for side in range(2)) for k in parts[0][1]}
        relaxations = {r: verifier.relax(r, bounds) for r in verifier.nonlinear_ids}
        return tf.concat([p[0] for p in parts], 0), bounds, relaxations
    alphas = _initial_alphas(verifier, relaxations, rows, spec)
    step = _step(verifier)
    best_bounds = {}

    def evaluate(params):
        lower, bounds, grads = step(inputs, spec, reference, rows, params)
        for k, (low, up) in bounds.items():  # every iterate's bounds are sound: keep the tightest
            if k in best_bounds:
                low, up = tf.maximum(low, best_bounds[k][0]), tf.minimum(up, best_bounds[k][1])
            best_bounds[k] = (low, up)
        return lower, grads

    groups = {k: (values, 0.0, 1.0, learning_rate) for k, values in alphas.items()}
    best = projected_adam.maximize(evaluate, groups, steps, alpha_crown.LR_DECAY)[0]
    return best, best_bounds, {r: verifier.relax(r, best_bounds) for r in verifier.nonlinear_ids}
