"""Interval bound propagation (IBP): elementwise bounds of every node, layer by layer.

An affine node z = L(z') + b maps a box with centre c and radius r to the box with centre L(c) + b and
radius |L|(r) (|L| has the absolute weights), which is the exact interval hull of the image. A ReLU maps
[l, u] to [relu(l), relu(u)], sigmoid and tanh to [f(l), f(u)] (moved outward by their rounding), max
pooling to [maxpool(l), maxpool(u)] (`nonlinear_ops`); an addition adds centres and radii.

The final spec is folded into the last affine node (the C matrix): for the output z = L(z') + b the spec
c gives <L^T c, z'> + <c, b>, bounded over the box of z'. This is tighter than combining logit bounds.
"""

import tensorflow as tf

from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.perturbation import LinfBox, outward


def interval_bounds(nodes, inputs, overrides=None):
    """(lower, upper) of every node's value over the input set `inputs`.

    Args:
      nodes: the network's `TensorNode`s.
      inputs: the input set; its `box()` starts the propagation.
      overrides: optional {node id: (lower, upper)} used instead of the propagated interval (e.g. exact
        bounds of the first affine layers under an L2 ball).
    """
    overrides = overrides or {}
    bounds = [inputs.box()]
    for i, node in enumerate(nodes[1:], start=1):
        if i in overrides:
            bounds.append(overrides[i])
            continue
        parents = [bounds[j] for j in node.inputs]
        if node.op in NONLINEAR_RULES:
            bounds.append(NONLINEAR_RULES[node.op].interval(node.params, *parents[0]))
            continue
        center = node.apply(*[(u + l) / 2 for l, u in parents])
        radius = node.abs_linear(*[(u - l) / 2 for l, u in parents])
        bounds.append((center - radius, center + radius))
    return bounds


def interval_spec_lower_bound(nodes, bounds, spec):
    """(N, S) lower bounds of <spec, output>, rounded outward; the spec is folded into an affine output."""
    output = nodes[-1]
    n, s = tf.shape(spec)[0], tf.shape(spec)[1]
    if not output.is_linear:
        return outward(*LinfBox(*bounds[-1]).concretize(spec))
    flat = tf.reshape(spec, tf.concat([[n * s], output.shape], 0))
    value = magnitude = tf.zeros([n, s], spec.dtype)
    if output.bias is not None:
        terms = tf.reshape(flat * output.bias, [n, s, -1])
        value += tf.reduce_sum(terms, -1)
        magnitude += tf.reduce_sum(tf.abs(terms), -1)
    for j, a_j in zip(output.inputs, output.transpose(flat)):
        a_j = tf.reshape(a_j, tf.concat([[n, s], nodes[j].shape], 0))
        v, m = LinfBox(*bounds[j]).concretize(a_j)
        value, magnitude = value + v, magnitude + m
    return outward(value, magnitude)
