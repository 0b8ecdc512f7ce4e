"""Backward linear bound propagation (CROWN / DeepPoly): a lower bound of <c, z_k(x)> over an input set.

Starting from a spec `c` on node k, the pass walks the graph backwards, keeping for every node j a
coefficient tensor A_j and a scalar bias such that for every x in the input set

    <c, z_k(x)>  >=  sum_j <A_j, z_j(x)> + bias        (over the nodes j still pending)

and finally concretises <A_input, x> over the input set (its dual norm). At an affine node
z = L(z') + b the bound carries over exactly: <A, z> = <L^T A, z'> + <A, b>. At a ReLU with
relaxation lower_slope * x <= relu(x) <= upper_slope * x + upper_intercept (see `relu_relaxation`),
a lower bound of <A, relu(x)> takes the lower line where A > 0 and the upper line where A < 0:

    <A, relu(x)>  >=  <A+ * lower_slope + A- * upper_slope, x> + <A-, upper_intercept>.

Upper bounds are lower bounds of the negated spec, so one routine serves both. Nodes with several
consumers (residual connections) receive the sum of their consumers' coefficients.
"""

import tensorflow as tf

from swtf.certify.perturbation import outward


def _sum_features(t):
    return tf.reduce_sum(t, axis=list(range(1, t.shape.rank)))


def _relu_backward(a, relaxation, alpha, n, s, shape):
    """Coefficients before a ReLU and the bias terms (value, magnitude) for a lower bound."""
    a = tf.reshape(a, tf.concat([[n, s], shape], 0))
    a_pos, a_neg = tf.maximum(a, 0), tf.minimum(a, 0)
    lower_slope = relaxation.lower_slope[:, None]
    if alpha is not None:
        lower_slope = tf.where(relaxation.unstable[:, None], alpha, lower_slope)
    a_in = a_pos * lower_slope + a_neg * relaxation.upper_slope[:, None]
    flat = tf.concat([[n * s], shape], 0)
    bias = tf.reshape(a_neg * relaxation.upper_intercept[:, None], flat)
    return tf.reshape(a_in, flat), _sum_features(bias)


def backward_lower_bound(nodes, start, spec, inputs, relaxations, alphas=None):
    """Lower bounds of <spec[n, s], z_start(x)> for every point n and spec row s, over `inputs`.

    Args:
      nodes: the network's `TensorNode`s.
      start: id of the node the spec applies to.
      spec: (N, S, *nodes[start].shape) coefficients.
      inputs: the input set (`LinfBox` or `L2Ball`) of the N points.
      relaxations: {relu node id: `Relaxation` with (N, *shape) tensors} for every ReLU before `start`.
      alphas: optional {relu node id: (N, S, *shape)} lower slopes in [0, 1] for unstable neurons
        (alpha-CROWN); by default the relaxations' own (adaptive) lower slopes.

    Returns:
      (N, S) lower bounds, rounded outward.
    """
    n, s = tf.shape(spec)[0], tf.shape(spec)[1]
    pending = {start: tf.reshape(spec, tf.concat([[n * s], nodes[start].shape], 0))}
    bias = tf.zeros([n * s], spec.dtype)
    magnitude = tf.zeros([n * s], spec.dtype)
    for i in range(start, 0, -1):
        a = pending.pop(i, None)
        if a is None:
            continue
        node = nodes[i]
        if node.op == "relu":
            alpha = None if alphas is None else alphas.get(i)
            a_in, term = _relu_backward(a, relaxations[i], alpha, n, s, node.shape)
            parents, term_magnitude = [a_in], tf.abs(term)
        else:
            parents = node.transpose(a)
            term = term_magnitude = tf.zeros_like(bias)
            if node.bias is not None:
                term = _sum_features(a * node.bias)
                term_magnitude = _sum_features(tf.abs(a) * tf.abs(node.bias))
        bias += term
        magnitude += term_magnitude
        for j, a_j in zip(node.inputs, parents):
            pending[j] = pending[j] + a_j if j in pending else a_j
    a_input = pending.get(0, tf.zeros(tf.concat([[n * s], nodes[0].shape], 0), spec.dtype))
    value, input_magnitude = inputs.concretize(tf.reshape(a_input, tf.concat([[n, s], nodes[0].shape], 0)))
    return outward(value + tf.reshape(bias, [n, s]), input_magnitude + tf.reshape(magnitude, [n, s]))
