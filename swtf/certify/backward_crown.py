"""Backward linear bound propagation (CROWN / DeepPoly): a lower bound of <c, z_k(x)> over an input set.

Starting from a spec `c` on node k, the pass walks the graph backwards, keeping for every node j a
coefficient tensor A_j and a scalar bias such that for every x in the input set

    <c, z_k(x)>  >=  sum_j <A_j, z_j(x)> + bias        (over the nodes j still pending)

and finally concretises <A_input, x> over the input set (its dual norm). At an affine node
z = L(z') + b the bound carries over exactly: <A, z> = <L^T A, z'> + <A, b>. At a nonlinear node the
op's rule (`nonlinear_ops`) replaces it by its relaxation's lines: for a ReLU with
lower_slope * x <= relu(x) <= upper_slope * x + upper_intercept (see `relu_relaxation`), a lower bound
of <A, relu(x)> takes the lower line where A > 0 and the upper line where A < 0:

    <A, relu(x)>  >=  <A+ * lower_slope + A- * upper_slope, x> + <A-, upper_intercept>.

Upper bounds are lower bounds of the negated spec, so one routine serves both. Nodes with several
consumers (residual connections) receive the sum of their consumers' coefficients.

Rows of single neurons (`neuron_bounds`) each read their own point's relaxations and input set. With
`fused`, their elementwise work (the ReLU step, bias terms, the concretisation, each with that gather)
runs as XLA-fused kernels: one pass over the coefficients instead of a materialised gather and five to
eight separate TF ops, 1.4x faster per dense row on a CIFAR-size network; the transposed convolutions
stay TF's own kernels (XLA's float64 convolutions were 2-5x slower). XLA does not use fast-math on CPU,
and any summation order it picks is covered by the outward rounding margin (`perturbation`).
"""

import math

import tensorflow as tf

from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.perturbation import outward


def _sum_features(t):
    return tf.reduce_sum(t, axis=list(range(1, t.shape.rank)))


def fusable(function):
    """{False: `function`, True: it compiled as one XLA kernel} (see the module docstring)."""
    return {False: function, True: tf.function(function, jit_compile=True, autograph=False)}


@fusable
def _bias_terms(a, bias):
    """<a, bias> per row and its magnitude <|a|, |bias|>."""
    return _sum_features(a * bias), _sum_features(tf.abs(a) * tf.abs(bias))


def _point_values(values, points):
    """The rows' copies of per-point tensors (a namedtuple of (N, ...) tensors): row r reads points[r]."""
    return type(values)(*(tf.gather(t, points) for t in values))


@fusable
def _nonlinear_rows(backward, a, relaxation, points, in_shape):
    """A nonlinear rule's `backward` of single rows, each with its point's relaxation."""
    return backward(_point_values(relaxation, points), a, None, tf.shape(points)[0], 1, in_shape)


@fusable
def _concretize_rows(inputs, a, points):
    """`inputs.concretize` of single rows, each over its point's set."""
    return _point_values(inputs, points).concretize(a[:, None])



def backward_lower_bound(nodes, start, spec, inputs, relaxations, alphas=None, node_terms=None):
    """Lower bounds of <spec[n, s], z_start(x)> for every point n and spec row s, over `inputs`.

    Args:
      nodes: the network's `TensorNode`s.
      start: id of the node the spec applies to.
      spec: (N, S, *nodes[start].shape) coefficients.
      inputs: the input set (`LinfBox` or `L2Ball`) of the N points.
      relaxations: {relu node id: `Relaxation` with (N, *shape) tensors} for every ReLU before `start`.
      alphas: optional {relu node id: (N, S, *shape)} lower slopes in [0, 1] for unstable neurons
        (alpha-CROWN); by default the relaxations' own (adaptive) lower slopes.
      node_terms: optional {node id k < start: (N, S, *shape of k)} coefficients T_k added to node k's
        pending coefficients: the pass then bounds <spec, z_start> + sum_k <T_k, z_k> from below, which is
        a lower bound of <spec, z_start> itself on the part of the input set where every <T_k, z_k> <= 0
        (beta-CROWN's Lagrangian terms of split constraints, `beta_crown`).

    Returns:
      (N, S) lower bounds, rounded outward.
    """
    n, s = tf.shape(spec)[0], tf.shape(spec)[1]
    pending = {start: tf.reshape(spec, tf.concat([[n * s], nodes[start].shape], 0))}
    for k, term in (node_terms or {}).items():
        pending[k] = tf.reshape(term, tf.concat([[n * s], nodes[k].shape], 0))
    zero = tf.zeros([n * s], spec.dtype)
    return propagate(nodes, start, pending, zero, zero, n, s, inputs, relaxations, alphas)


def neuron_bounds(nodes, start, start_rows, rows, inputs, relaxations, stop=0, fused=False):
    """Lower bounds, (R,), of sign * z_start[point, index] for `rows` (R, 3) of (point, flat neuron index,
    sign +1 or -1): the same numbers as `backward_lower_bound` with the spec row sign * e_index of that
    point (sign -1 gives minus an upper bound). With `stop` > 0 the pass ends at node `stop` and
    `inputs` is a box of that node's value (see `propagate`); `fused`: XLA-fused elementwise steps.

    Each row reads its own point's input set and relaxations, so points with few neurons to bound cost
    few rows. When `start_rows` is given, it is the transpose of node `start`'s linear map applied to
    every unit vector, (size, *input shape): the first backward step of a unit row is then a row of it (a
    gather), not a transposed convolution; the bias term of e_i is bias_i.
    """
    points, index = rows[:, 0], rows[:, 1]
    signs = tf.cast(rows[:, 2], inputs[0].dtype)
    n, node = tf.shape(index)[0], nodes[start]
    if start_rows is None:
        spec = tf.reshape(tf.one_hot(index, math.prod(node.shape), dtype=signs.dtype) * signs[:, None],
                          tf.concat([[n], node.shape], 0))
        zero = tf.zeros_like(signs)
        return propagate(nodes, start, {start: spec}, zero, zero, n, 1, inputs, relaxations, None, stop,
                         points, fused)[:, 0]
    (parent,) = node.inputs
    coefficients = tf.gather(start_rows, index) * tf.reshape(signs, [-1] + [1] * len(nodes[parent].shape))
    bias = tf.zeros_like(signs)
    if node.bias is not None:
        bias = signs * tf.gather(tf.reshape(tf.broadcast_to(node.bias, node.shape), [-1]), index)
    return propagate(nodes, parent, {parent: coefficients}, bias, tf.abs(bias), n, 1, inputs, relaxations,
                     None, stop, points, fused)[:, 0]


def propagate(nodes, top, pending, bias, magnitude, n, s, inputs, relaxations, alphas, stop=0, points=None,
              fused=False):
    """Carries the pending coefficients {node id: (N * S, *shape)} from node `top` down to node `stop` and
    concretises them over `inputs`: the input set, or for `stop` > 0 a `LinfBox` enclosing node `stop`'s
    value, where every path from `top` to the input passes through `stop` (a cut of the graph).

    With `points` (N,), each of the N rows (S = 1, no alphas) is bounded over the input set and with the
    relaxations of its point (with `fused`, in XLA-fused kernels: see the module docstring)."""
    dtype = bias.dtype
    for i in range(top, stop, -1):
        a = pending.pop(i, None)
        if a is None:
            continue
        node = nodes[i]
        if node.op in NONLINEAR_RULES:
            backward, in_shape = NONLINEAR_RULES[node.op].backward, tuple(node.input_shapes[0])
            if points is None:
                alpha = None if alphas is None else alphas.get(i)
                a_in, term = backward(relaxations[i], a, alpha, n, s, in_shape)
            else:
                a_in, term = _nonlinear_rows[fused](backward, a, relaxations[i], points, in_shape)
            parents, term_magnitude = [a_in], tf.abs(term)
        else:
            parents = node.transpose(a)
            term = term_magnitude = tf.zeros_like(bias)
            if node.bias is not None:
                term, term_magnitude = _bias_terms[fused](a, node.bias)
        bias += term
        magnitude += term_magnitude
        for j, a_j in zip(node.inputs, parents):
            pending[j] = pending[j] + a_j if j in pending else a_j
    if any(j != stop for j in pending):
        raise ValueError(f"node {stop} is not a cut below node {top}")
    a_input = pending.get(stop, tf.zeros(tf.concat([[n * s], nodes[stop].shape], 0), dtype))
    if points is None:
        value, input_magnitude = inputs.concretize(tf.reshape(a_input, tf.concat([[n, s], nodes[stop].shape], 0)))
    else:
        value, input_magnitude = _concretize_rows[fused](inputs, a_input, points)
    return outward(value + tf.reshape(bias, [n, s]), input_magnitude + tf.reshape(magnitude, [n, s]))
