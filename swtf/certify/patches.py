"""Receptive-field patches: backward CROWN rows of a convolution's neurons, kept as small local windows.

A unit spec row e_(i, j, c) on the output of a convolution depends only on a kh x kw window of the
convolution's input; one more convolution back it depends on a ((kh - 1) * s + k') window, and so on.
The dense backward pass (`backward_crown`) carries such a row as a tensor of the whole feature map,
almost all zeros; here it is carried as a patch (R, ph, pw, C) with an anchor (R, 2): the feature-map
position of the patch's top-left element (negative, or past the edge, where the window covers padding).
auto_LiRPA does the same for CNNs ("patches mode"). The rules, for coefficients A on the value of a
node (each is the dense rule restricted to the window, since A is zero outside it):

  conv2d   A on the output, anchor a  ->  conv2d_transpose(A) ('VALID', same kernel and strides) on the
           input, window ((ph - 1) * s + kh), anchor a * s - pad_before; positions outside the input
           map are the convolution's zero padding, so their coefficients are dropped (masked to zero);
           bias term <A, b>.
  relu,    A+ * lower_slope + A- * upper_slope with the relaxation's windows, bias term
  sigmoid, <A-, upper_intercept> (+ <A+, lower_intercept> for sigmoid and tanh); relaxations are
  tanh     zero-padded, so masked positions stay zero.
  affine   A * scale, bias term <A, shift>, for a per-channel scale and shift.
  max_pool the selection rule (`max_pool_relaxation`) per window: A+ + A- * dominant goes to the selected
           input, now a position of the input window ((ph - 1) * s + pool, anchor a * s - pad_before),
           the constant gives the bias term <A- * (1 - dominant), upper_bound>.
  input    concretisation over the input set's windows (A is zero elsewhere, so the box support and the
           L2 norm of the window are those of the whole input).

Positions of a patch outside its node's feature map stand for the zero padding: each step masks them to
zero first (the ReLU rule, bias terms, the concretisation) and the dense scatter crops them, so every
bias term and concretisation over the window equals the dense one. With `fused`, the elementwise work
of each step, with its window gathers, runs as one XLA-fused kernel (see `backward_crown`). Where a
patch would cover the whole feature map, or the walk meets another op (average pooling, addition, reshape),
the patch is scattered into a dense tensor and `backward_crown` continues from there; the numbers are the
dense pass's up to float rounding.
"""

import dataclasses
import math

import tensorflow as tf

from swtf.certify.backward_crown import fusable, propagate
from swtf.certify.network import ACTIVATIONS, pool_pads
from swtf.certify.perturbation import outward


@dataclasses.dataclass(frozen=True)
class PatchPlan:
    """How unit rows of conv node `start` travel back: in patch form through the nodes of `chain`
    ((node id, window) pairs: the node whose value the coefficients sit on and the patch's (ph, pw)
    there, from the start's input down), then at node `end` (window `end_window`) either concretised
    (`end` is the input, 0) or scattered into a dense tensor for `backward_crown` to continue."""

    start: int
    chain: tuple
    end: int
    end_window: tuple

    def row_elements(self, nodes):
        """Largest coefficient tensor per row (elements), for sizing chunks of rows."""
        sizes = [ph * pw * nodes[i].shape[-1] for i, (ph, pw) in self.chain + ((self.end, self.end_window),)]
        if self.end != 0:
            sizes += [math.prod(node.shape) for node in nodes[:self.end + 1]]
        return max(sizes)


def _per_channel(node):
    """True for an affine node whose scale and shift vary only along the channel axis."""
    return all(math.prod(t.shape[:-1]) == 1 for t in (node.params["scale"], node.bias) if t.shape.rank)


def _window_size(node):
    """(kh, kw): the kernel of a convolution or the pool of a max pooling node."""
    return tuple(node.params["kernel"].shape[:2]) if node.op == "conv2d" else tuple(node.params["pool"])


def _pads(node):
    """(top, bottom, left, right) zero padding of a convolution, or a max pooling's padded positions."""
    return node.params["pads"] if node.op == "conv2d" else pool_pads(node.params, node.input_shapes[0])


def _smaller_than_map(node, window):
    return window[0] * window[1] < node.shape[0] * node.shape[1]


def patch_plan(nodes, start):
    """The `PatchPlan` of conv node `start`, or None if its rows gain nothing from patches (the first
    window already covers the feature map)."""
    node = nodes[start]
    if node.op != "conv2d":
        return None
    at, window = node.inputs[0], tuple(node.params["kernel"].shape[:2])
    if not _smaller_than_map(nodes[at], window):
        return None
    chain = []
    while at != 0:
        current = nodes[at]
        if current.op in ("conv2d", "max_pool"):
            (sh, sw), (kh, kw) = current.params["strides"], _window_size(current)
            parent_window = ((window[0] - 1) * sh + kh, (window[1] - 1) * sw + kw)
        elif current.op in ACTIVATIONS or (current.op == "affine" and _per_channel(current)):
            parent_window = window
        else:
            break
        parent = current.inputs[0]
        if not _smaller_than_map(nodes[parent], parent_window):
            break
        chain.append((at, window))
        at, window = parent, parent_window
    return PatchPlan(start, tuple(chain), at, window)


def _padded_index(batch, anchors, window, size):
    """(R, ph, pw, 3) gather/scatter indices (batch row, row, column) of each window in a feature map of
    spatial `size` (H, W) zero-padded by the window on every side; anchors are clipped to [-ph, H] (a window
    entirely in the padding reads zeros wherever it lies)."""
    (ph, pw), (h, w) = window, size
    rows = tf.clip_by_value(anchors[:, 0], -ph, h)[:, None] + ph + tf.range(ph)  # (R, ph)
    cols = tf.clip_by_value(anchors[:, 1], -pw, w)[:, None] + pw + tf.range(pw)  # (R, pw)
    r = tf.shape(batch)[0]
    return tf.stack([tf.broadcast_to(batch[:, None, None], [r, ph, pw]),
                     tf.broadcast_to(rows[:, :, None], [r, ph, pw]),
                     tf.broadcast_to(cols[:, None, :], [r, ph, pw])], axis=-1)


def _windows(tensor, points, anchors, window):
    """(R, ph, pw, C) windows of `tensor` (N, H, W, C) at `anchors` (R, 2) of `points` (R,), zero where a
    window leaves the feature map."""
    ph, pw = window
    padded = tf.pad(tensor, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    return tf.gather_nd(padded, _padded_index(points, anchors, window, tensor.shape[1:3]))


def _inside(anchors, window, shape):
    """(R, ph, pw, 1) mask of the window positions inside a feature map of `shape` (H, W, C)."""
    rows = anchors[:, 0:1] + tf.range(window[0])
    cols = anchors[:, 1:2] + tf.range(window[1])
    inside_rows = tf.logical_and(rows >= 0, rows < shape[0])[:, :, None, None]
    inside_cols = tf.logical_and(cols >= 0, cols < shape[1])[:, None, :, None]
    return tf.logical_and(inside_rows, inside_cols)


def _mask(a, anchors, window, shape):
    return tf.where(_inside(anchors, window, shape), a, tf.zeros_like(a))


def _to_dense(a, anchors, window, shape):
    """The (R, H, W, C) dense tensor of patches `a` (R, ph, pw, C) placed at `anchors`."""
    (ph, pw), (h, w, c) = window, shape
    r = tf.shape(a)[0]
    index = _padded_index(tf.range(r), anchors, window, (h, w))
    padded = tf.scatter_nd(index, a, tf.stack([r, h + 2 * ph, w + 2 * pw, c]))
    return padded[:, ph:ph + h, pw:pw + w, :]


def _sum_window(t):
    return tf.reduce_sum(t, axis=[1, 2, 3])


@fusable
def _activation_step(a, relaxation, points, anchors, window, shape):
    """An activation's rule on patches `a` (masked first), with each row's point's relaxation windows: the
    coefficients before the activation and the bias term."""
    a = _mask(a, anchors, window, shape)
    a_pos, a_neg = tf.maximum(a, 0), tf.minimum(a, 0)
    term = _sum_window(a_neg * _windows(relaxation.upper_intercept, points, anchors, window))
    if hasattr(relaxation, "lower_intercept"):
        term += _sum_window(a_pos * _windows(relaxation.lower_intercept, points, anchors, window))
    a = (a_pos * _windows(relaxation.lower_slope, points, anchors, window)
         + a_neg * _windows(relaxation.upper_slope, points, anchors, window))
    return a, term


@fusable
def _max_pool_step(a, relaxation, points, anchors, window, shape, in_shape, parent_anchors, parent_window):
    """The max pooling rule on patches `a` (masked first), with each row's point's relaxation windows: the
    patches (R, PH, PW, C) on the pool's input window at `parent_anchors`, and the bias term."""
    inside = tf.broadcast_to(_inside(anchors, window, shape), tf.shape(a))
    a = tf.where(inside, a, tf.zeros_like(a))
    a_pos, a_neg = tf.maximum(a, 0), tf.minimum(a, 0)
    dominant = _windows(tf.cast(relaxation.dominant, a.dtype), points, anchors, window)
    term = _sum_window(a_neg * (1 - dominant) * _windows(relaxation.upper_bound, points, anchors, window))
    # Each output's selected input, (row, col, channel) in the input map, as a position of its row's window.
    index = _windows(relaxation.index, points, anchors, window)
    width, channels = in_shape[1], in_shape[2]
    rows = index // (width * channels) - parent_anchors[:, 0, None, None, None]
    cols = (index // channels) % width - parent_anchors[:, 1, None, None, None]
    count = tf.shape(a)[0]
    size = parent_window[0] * parent_window[1] * channels
    local = tf.range(count)[:, None, None, None] * size + (rows * parent_window[1] + cols) * channels + index % channels
    local = tf.where(inside, local, count * size)  # positions outside the map (zero) go to a dropped segment
    patches = tf.math.unsorted_segment_sum(tf.reshape(a_pos + a_neg * dominant, [-1]), tf.reshape(local, [-1]),
                                           count * size + 1)[:-1]
    return tf.reshape(patches, [count, parent_window[0], parent_window[1], channels]), term


@fusable
def _masked_bias_terms(a, anchors, window, shape, bias):
    """Patches `a` masked, and the bias terms <a, bias> and <|a|, |bias|> of an affine node."""
    a = _mask(a, anchors, window, shape)
    return a, _sum_window(a * bias), _sum_window(tf.abs(a) * tf.abs(bias))


@fusable
def _concretize_windows(inputs, a, bias, magnitude, points, anchors, window, shape):
    """Lower bounds (R,) of <a, v> + bias over the windows of each row's set `inputs` of the value v, for
    patches `a` (masked first)."""
    a = _mask(a, anchors, window, shape)
    if hasattr(inputs, "eps"):
        window_set = type(inputs)(_windows(inputs.center, points, anchors, window), tf.gather(inputs.eps, points))
    else:
        window_set = type(inputs)(*(_windows(t, points, anchors, window) for t in inputs))
    value, input_magnitude = window_set.concretize(a[:, None])
    return outward(value[:, 0] + bias, input_magnitude[:, 0] + magnitude)


def patch_neuron_bounds(nodes, plan, rows, inputs, relaxations, stop=0, fused=False):
    """Lower bounds, (R,), of sign * z_start[point, index] for `rows` (R, 3) of (point, flat neuron index,
    sign): `backward_crown.neuron_bounds` computed with patches (see the module docstring), ending at
    node `stop` as there."""
    start = nodes[plan.start]
    (_, wo, co), (sh, sw) = start.shape, start.params["strides"]
    top, _, left, _ = start.params["pads"]
    points, index = rows[:, 0], rows[:, 1]
    signs = tf.cast(rows[:, 2], inputs[0].dtype)
    cell = index // co
    anchors = tf.stack([(cell // wo) * sh - top, (cell % wo) * sw - left], 1)
    kernel = tf.transpose(start.params["kernel"], [3, 0, 1, 2])  # (cout, kh, kw, cin)
    window = plan.chain[0][1] if plan.chain else plan.end_window
    a = tf.gather(kernel, index % co) * signs[:, None, None, None]
    bias = tf.zeros_like(signs)
    if start.bias is not None:
        bias = signs * tf.gather(tf.reshape(tf.broadcast_to(start.bias, start.shape), [-1]), index)
    magnitude = tf.abs(bias)

    for at, window in plan.chain:
        shape = tuple(nodes[at].shape)
        if at == stop:
            return _concretize_windows[fused](inputs, a, bias, magnitude, points, anchors, window, shape)
        node = nodes[at]
        if node.op == "max_pool":
            (sh, sw), (ph, pw) = node.params["strides"], node.params["pool"]
            top, _, left, _ = _pads(node)
            parent_anchors = anchors * tf.constant([sh, sw]) - tf.constant([top, left])
            parent_window = ((window[0] - 1) * sh + ph, (window[1] - 1) * sw + pw)
            a, term = _max_pool_step[fused](a, relaxations[at], points, anchors, window, shape,
                                            tuple(node.input_shapes[0]), parent_anchors, parent_window)
            bias += term
            magnitude += tf.abs(term)
            anchors = parent_anchors
            continue
        if node.op in ACTIVATIONS:
            a, term = _activation_step[fused](a, relaxations[at], points, anchors, window, shape)
            bias += term
            magnitude += tf.abs(term)
            continue
        a, term, term_magnitude = _masked_bias_terms[fused](a, anchors, window, shape, node.bias)
        bias += term
        magnitude += term_magnitude
        if node.op == "affine":
            a = a * node.params["scale"]
            continue
        (kh, kw), (sh, sw) = node.params["kernel"].shape[:2], node.params["strides"]
        top, _, left, _ = node.params["pads"]
        parent_shape = node.input_shapes[0]
        parent_window = ((window[0] - 1) * sh + kh, (window[1] - 1) * sw + kw)
        a = tf.nn.conv2d_transpose(a, node.params["kernel"],
                                   output_shape=tf.stack([tf.shape(a)[0], *parent_window, parent_shape[-1]]),
                                   strides=[sh, sw], padding="VALID")
        anchors = anchors * tf.constant([sh, sw]) - tf.constant([top, left])

    if plan.end == stop:
        return _concretize_windows[fused](inputs, a, bias, magnitude, points, anchors, plan.end_window,
                                   tuple(nodes[plan.end].shape))
    # Continue densely from `plan.end`, with each row's own input set and relaxations (positions outside
    # the feature map fall in the margin `_to_dense` crops).
    dense = _to_dense(a, anchors, plan.end_window, nodes[plan.end].shape)
    return propagate(nodes, plan.end, {plan.end: dense}, bias, magnitude, tf.shape(index)[0], 1, inputs,
                     relaxations, None, stop, points, fused)[:, 0]
