"""`Verifier`: the bound methods for one `Network` in one dtype, with their compiled TF functions.

Methods (each gives lower bounds of spec rows <c, output>; upper bounds are lower bounds of -c):
  ibp          interval bounds through every node, the spec folded into the last affine node;
  crown        full CROWN: the bounds of every ReLU's input are themselves computed by a backward
               CROWN pass from that node (in topological order), then a backward pass from the output;
  crown-ibp    IBP bounds for the ReLU inputs, CROWN for the final spec;
  alpha-crown  full-CROWN intermediate bounds, the final pass with optimised lower slopes.

Under an L-inf box, the pre-activation bounds of a node reached from the input by a chain of single-input
affine ops with at most one mixing op (dense, conv2d, avg_pool; the others are coordinatewise) are
exact by interval arithmetic, so full CROWN takes them from IBP instead of a backward pass per neuron
(auto_LiRPA does the same for the first linear layer); the numbers are the same.

Under an L2 ball, IBP starts from exact bounds of the first affine nodes (the nodes that depend on the
input only through affine ops, where a non-affine op reads them): their backward pass involves no
relaxation, so they are the exact ranges, as an L2 interval propagation through a first linear layer
gives. Intermediate CROWN passes batch the rows of the identity spec in chunks bounded by MAX_ELEMENTS.
"""

import functools
import math

import tensorflow as tf

from swtf.certify import alpha_crown
from swtf.certify.backward_crown import backward_lower_bound
from swtf.certify.ibp import interval_bounds, interval_spec_lower_bound
from swtf.certify.linear_ops import tensor_nodes
from swtf.certify.relu_relaxation import relu_relaxation

METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown")

# Largest coefficient tensor (elements) one intermediate CROWN chunk may create: 2**23 float64 = 64 MiB.
MAX_ELEMENTS = 2 ** 23


def _input_affine_frontier(network):
    """Ids of nodes affine in the input that a non-affine node (or nothing: the output) reads."""
    affine = {0}
    for i, node in enumerate(network.nodes[1:], start=1):
        if node.op != "relu" and all(j in affine for j in node.inputs):
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


class Verifier:
    """Computes certified bounds for one network; build once, call many times (e.g. in bisection)."""

    def __init__(self, network, dtype=tf.float64, live=False):
        """`live`: bound with the weights' source variables, read at every call (see `tensor_nodes`)."""
        self.network = network
        self.dtype = dtype
        self.nodes = tensor_nodes(network, dtype, live)
        self.relu_ids = [i for i, node in enumerate(self.nodes) if node.op == "relu"]
        self._l2_ibp_frontier = _input_affine_frontier(network)
        self._interval_exact = _interval_exact_nodes(network)
        self._backward = {}
        self._alpha_step = tf.function(functools.partial(alpha_crown.bound_and_gradient,
                                                         self._backward_from(network.output_id)),
                                       autograph=False)
        self._ibp = tf.function(functools.partial(interval_bounds, self.nodes), autograph=False)
        self._ibp_spec = tf.function(self._ibp_spec_impl, autograph=False)

    def _backward_from(self, start):
        if start not in self._backward:
            self._backward[start] = tf.function(functools.partial(backward_lower_bound, self.nodes, start),
                                                 autograph=False)
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

    def crown_relaxations(self, inputs):
        """ReLU relaxations from full-CROWN pre-activation bounds: {relu id: Relaxation}."""
        relaxations, bounds = {}, {}
        if not hasattr(inputs, "eps"):
            boxes = self.interval_bounds(inputs)
            bounds = {k: boxes[k] for k in self._interval_exact}
        for r in self.relu_ids:
            k = self.nodes[r].inputs[0]
            if k not in bounds:
                bounds[k] = self.node_bounds(k, inputs, relaxations)
            relaxations[r] = relu_relaxation(*bounds[k])
        return relaxations

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
        if method == "crown-ibp":
            boxes = self.interval_bounds(inputs)
            relaxations = {r: relu_relaxation(*boxes[self.nodes[r].inputs[0]]) for r in self.relu_ids}
        else:
            relaxations = self.crown_relaxations(inputs)
        if method == "alpha-crown":
            return alpha_crown.optimized_lower_bound(self._alpha_step, spec, inputs, relaxations)
        return self._backward_from(self.network.output_id)(spec, inputs, relaxations)
