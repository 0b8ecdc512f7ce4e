"""Full CROWN on the undecided neurons only: an enclosure of the CROWN bounds that costs one interval pass.

Full CROWN bounds every ReLU input neuron by a backward pass. The ReLU relaxation of a neuron reads its
bounds [l, u] only through its sign pattern when the neuron is stable (l >= 0: relu(x) = x; u <= 0:
relu(x) = 0), so a neuron whose CROWN bounds are known to be stable without computing them needs no
backward pass. This module gives, for a node z_k, an interval [L, U] that encloses CROWN's own bounds
(L <= l_crown, u_crown <= U); where L >= 0 or U <= 0 the neuron is stable under CROWN too, and only the
other ("undecided") neurons get a backward pass. The relaxations, hence every bound computed from them,
are then those of plain full CROWN.

Why [L, U] encloses CROWN's bounds. Write CROWN(f) for the lower bound the backward pass gives for a
linear function f of some node, with the relaxations fixed. CROWN is positively homogeneous and
superadditive, CROWN(f + g) >= CROWN(f) + CROWN(g): affine steps are linear, the concretisation is a
minimum over the input set (a minimum of a sum is at least the sum of the minima), and at a ReLU with
lower line ls * x and upper line us * x + t (ls <= us on [l, u] as lines below and above relu), the
coefficient a = p + q of a sum gets the lower line if a > 0 and the upper one if a < 0, and
        a+ * ls + a- * us  >=  p+ * ls + p- * us + q+ * ls + q- * us       (pointwise on [l, u]),
because moving a positive part onto the upper line or a negative part onto the lower line only lowers
the line. Hence for c . z_j = sum_i c_i z_j,i:
        CROWN(c . z_j)  >=  sum_i c_i * (l_i if c_i > 0 else u_i)
for any per-neuron bounds [l_i, u_i] that CROWN's per-neuron bounds lie within (the computed ones, or
IBP bounds of the first affine layers, which are exact). At a ReLU output relu(z_j), the first
backward step turns c into c+ * ls + c- * us plus the intercept term, and by the same argument its
CROWN bound is at least sum_i c_i * (ls_i * l_i if c_i > 0 else relu(u_i)): the relaxed ReLU output
lies, as far as CROWN is concerned, in the box [ls * l, relu(u)] (for an unstable neuron with lower
slope 1 this is [l, u], wider than the IBP box [0, u]: CROWN can be looser than interval arithmetic
there, which is why plain IBP bounds would not do). Every nonlinear op has such a box (`output_box` in
`nonlinear_ops`: for sigmoid and tanh [ls * l + li, us * u + ui], for max pooling the selected input's
lower bound and the upper line's maximum), by the same argument with its own lines. Interval arithmetic from these boxes through the
affine ops up to z_k bounds each sum from below, so its result L is at most CROWN's lower bound of z_k;
U likewise (upper bounds are lower bounds of -z_k). [L, U] is rounded outward like every final bound.

auto_LiRPA skips neurons that are stable under a reference interval (IBP from the previous layer's
bounds) and keeps that interval as their bounds; that can differ from full CROWN, because a neuron can
be stable by IBP and unstable by CROWN. Here the skipped neurons are exactly those stable under CROWN,
and the relaxations equal those of full CROWN up to float rounding: a neuron whose CROWN bound lies
within rounding of 0 may be classed stable, where the relaxation is continuous in [l, u] anyway.
"""

import tensorflow as tf

from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.perturbation import outward


def crown_enclosure(nodes, target, inputs, known, relaxations):
    """(L, U), each (N, *shape), enclosing the full-CROWN bounds of node `target` (see module docstring).

    Args:
      nodes: the network's `TensorNode`s.
      target: id of the node bounded.
      inputs: the input set.
      known: {node id: (lower, upper)} bounds enclosing the CROWN bounds of earlier pre-activation nodes
        (at least the input of every ReLU before `target`).
      relaxations: {relu id: `Relaxation`} of the ReLUs before `target`.
    """
    boxes = {}  # node id -> (lower, upper, magnitude: a bound on the absolute values summed into them)

    def box(i):
        if i not in boxes:
            boxes[i] = _box(i)
        return boxes[i]

    def _box(i):
        node = nodes[i]
        if i in known and i != target:
            lower, upper = known[i]
        elif node.op in NONLINEAR_RULES:
            lower, upper = NONLINEAR_RULES[node.op].output_box(relaxations[i], *known[node.inputs[0]])
        elif i == 0:
            lower, upper = inputs.box()
        else:
            parents = [box(j) for j in node.inputs]
            center = node.apply(*[(u + l) / 2 for l, u, _ in parents])
            radius = node.abs_linear(*[(u - l) / 2 for l, u, _ in parents])
            magnitude = node.abs_linear(*[m for _, _, m in parents])
            if node.bias is not None:
                magnitude += tf.abs(node.bias)
            return center - radius, center + radius, magnitude
        return lower, upper, tf.maximum(tf.abs(lower), tf.abs(upper))

    lower, upper, magnitude = box(target)
    return outward(lower, magnitude), -outward(-upper, magnitude)


def undecided_neurons(lower, upper):
    """(R, 2) int32 pairs (point, flat neuron index) of the neurons with lower < 0 < upper, point-major."""
    n = tf.shape(lower)[0]
    undecided = tf.logical_and(tf.reshape(lower, [n, -1]) < 0, tf.reshape(upper, [n, -1]) > 0)
    return tf.cast(tf.where(undecided), tf.int32)


def undecided_rows(nodes, target, inputs, known, relaxations):
    """The enclosure of node `target` flattened per point, (N, size) each, and its undecided neurons as rows
    (R, 3) of (point, flat index, sign): sign +1 asks first for the lower bound, where the enclosure leans
    positive (the side likelier to prove the neuron stable), -1 for minus the upper bound."""
    lower, upper = crown_enclosure(nodes, target, inputs, known, relaxations)
    n = tf.shape(lower)[0]
    lower, upper = tf.reshape(lower, [n, -1]), tf.reshape(upper, [n, -1])
    pairs = undecided_neurons(lower, upper)
    leans_positive = tf.gather_nd(upper, pairs) > -tf.gather_nd(lower, pairs)
    return lower, upper, tf.concat([pairs, tf.where(leans_positive, 1, -1)[:, None]], 1)


def apply_row_bounds(lower, upper, rows, bounds):
    """`lower`, `upper` (N, size) with `bounds` (R,) of `rows` (R, 3) written in (sign +1: a lower bound;
    -1: minus an upper bound), and the rows whose neuron is still undecided, now asking for the other side."""
    pairs, signs = rows[:, :2], rows[:, 2]
    lower = tf.tensor_scatter_nd_update(lower, tf.boolean_mask(pairs, signs > 0), tf.boolean_mask(bounds, signs > 0))
    upper = tf.tensor_scatter_nd_update(upper, tf.boolean_mask(pairs, signs < 0), -tf.boolean_mask(bounds, signs < 0))
    still = tf.boolean_mask(rows, tf.logical_and(tf.gather_nd(lower, pairs) < 0, tf.gather_nd(upper, pairs) > 0))
    return lower, upper, tf.concat([still[:, :2], -still[:, 2:]], 1)
