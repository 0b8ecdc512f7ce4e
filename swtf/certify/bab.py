"""Complete verification by branch and bound on ReLU splits (or input splits), bounded by beta-CROWN.

A problem is one input box and P disjuncts, each a set of rows: disjunct p is met at x when
<rows[p, s], f(x)> <= thresholds[p, s] for every row s (a counterexample), and refuted on a set when some
row's lower bound there exceeds its threshold. The problem is verified when every disjunct is refuted on
the whole box.

Each disjunct starts as one domain (the box). A round takes the BATCH domains whose best row is furthest
from refuted, splits each on one unstable ReLU (`branching`) into an active and an inactive child, and
bounds all children in one batched beta-CROWN call (`beta_crown`; alphas and betas inherited from the
parent). A child whose bound refutes its disjunct is closed; the others stay open. Every bounded domain
also offers the corner of the box where its bound is attained, and PGD starts from the corners of the
open domains of lowest gap (the most violated ones, where a counterexample is likeliest); the float64
reference `forward` checks each point against its disjunct, and a point that meets it is handed to
`confirm` (e.g. re-run in float32), which decides whether it is a counterexample.

A domain with every unstable ReLU split is linear on its subdomain: it is decided by a linear program
(`milp.Encoding` with the clamped bounds has no binaries; HiGHS), closed when the LP's proven bound exceeds
`LEAF_TOL` (exact up to the solver's tolerances, as `verify_exact` is), and its optimum is a candidate
counterexample.

Inputs of at most INPUT_SPLIT_MAX_DIMS dimensions (e.g. ACAS Xu's 5) are split instead (`InputSplitting`,
chosen by `branch_and_bound`): a domain is a sub-box, bounded by alpha-CROWN over its own intermediate
bounds, and halved along the dimension that costs its bound most. Splitting a low-dimensional box tightens
every intermediate bound at once, where a ReLU split tightens one neuron.

Results: 'verified' (every domain closed), 'falsified' (a confirmed counterexample), or 'unknown' (time or
domain budget spent, or a leaf the LP could not decide). Verified domains are closed by outward-rounded
float64 bounds, or by an LP at a leaf.
"""

import collections
import math
import time

import numpy as np
import tensorflow as tf

from swtf.certify import beta_crown, branching, full_alpha_crown
from swtf.certify.counterexamples import violation_descent
from swtf.certify.exact import misclassified_by_both
from swtf.certify.milp import Encoding, affine_maps, check_encodable
from swtf.certify.network import forward
from swtf.errors import SwtfError

# Largest coefficient tensor (elements) one batched bound may create; the batch of domains follows from it.
BATCH_ELEMENTS = 2 ** 24
MAX_BATCH = 1024
# Open domains beyond this many: 'unknown' (memory budget).
MAX_DOMAINS = 200_000
LEAF_TOL = 1e-4  # an LP at a leaf closes it when its proven bound exceeds this (see `exact.MARGIN_TOL`)
# Each round, PGD starts from the points of this many open domains of lowest gap, for this many steps.
ATTACK_STARTS = 64
ATTACK_STEPS = 20
PAD_OFFSET = 1e30  # the attack's threshold of a padding row: it never holds the largest violation
# Inputs of at most this many dimensions are split instead of ReLUs; sub-boxes are not split below MIN_WIDTH.
INPUT_SPLIT_MAX_DIMS = 16
MIN_WIDTH = 1e-9

BabResult = collections.namedtuple("BabResult", "status counterexample disjunct lower domains seconds reason")
BabResult.__doc__ = """status: 'verified', 'falsified' or 'unknown'; counterexample: the confirmed point (network
input shape) or None, and `disjunct` the one it meets (-1 if none); lower: the smallest, over open domains, of
the largest row bound minus threshold (> 0 once verified: +inf); domains: subdomains bounded; seconds; reason
(empty unless 'unknown')."""


def root_bounds(verifier, box, rows):
    """{nonlinear input id: (lower, upper)}, (1, *shape) NumPy: full alpha-CROWN's intermediate bounds for
    the problem's rows (CROWN's if alpha-CROWN's slopes would not fit in memory), intersected with IBP's."""
    root = beta_crown.box_of(box[0][None], box[1][None], verifier.dtype)
    spec = tf.constant(rows.reshape((1, -1) + rows.shape[2:]), verifier.dtype)
    try:
        bounds = full_alpha_crown.optimized_bounds(verifier, root, spec)[1]
    except SwtfError:
        bounds = verifier.intermediate_bounds(root)[0]
    boxes = verifier.interval_bounds(root)
    return {k: (np.maximum(lo.numpy(), boxes[k][0].numpy()), np.minimum(hi.numpy(), boxes[k][1].numpy()))
            for k, (lo, hi) in bounds.items()}


def batch_size(verifier, num_specs):
    """Domains per round: a batched backward pass creates coefficients of about S * (widest node) per domain."""
    widest = max(math.prod(node.shape) for node in verifier.nodes)
    return int(max(1, min(MAX_BATCH, BATCH_ELEMENTS // (2 * num_specs * widest))))


def _take(domains, index):
    """The domains at `index` of a tree of dicts of NumPy arrays with one leading entry per domain."""
    if isinstance(domains, dict):
        return {key: _take(value, index) for key, value in domains.items()}
    return domains[index]


def _concat(trees):
    if isinstance(trees[0], dict):
        return {key: _concat([tree[key] for tree in trees]) for key in trees[0]}
    return np.concatenate(trees)


class _Search:
    """The branch-and-bound loop over domains (module docstring); subclasses say what a domain is: `_roots`,
    `_bound` and `_branch`. Domains are trees of dicts of NumPy arrays, with an 'owner' (disjunct) entry."""

    def __init__(self, verifier, box, rows, thresholds, confirm, *, steps=beta_crown.STEPS, batch=None,
                 max_domains=MAX_DOMAINS):
        """Args:
          verifier: the network's `Verifier`.
          box: (lower, upper) NumPy arrays of the network's input shape.
          rows: (P, S, *output shape) rows of the P disjuncts (pad with zero rows, threshold +inf).
          thresholds: (P, S).
          confirm: callable(point, p) -> bool: whether `point`, which meets disjunct p in float64, is a
            counterexample (e.g. re-checked on the float32 model).
        """
        self.verifier, self.network, self.dtype = verifier, verifier.network, verifier.dtype
        self.box = tuple(np.asarray(b, np.float64) for b in box)
        self.rows = np.asarray(rows, np.float64)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.confirm = confirm
        self.steps, self.max_domains = steps, max_domains
        self.batch = batch or batch_size(verifier, self.thresholds.shape[1])
        self.relus = beta_crown.relu_inputs(verifier)
        self.bounded = 0

    def _gap(self, lower, owner):
        """Per domain, the largest row bound minus its threshold (> 0: refuted); NaN bounds count as -inf."""
        lower = lower.numpy()
        return np.max(np.where(np.isnan(lower), -np.inf, lower) - self.thresholds[owner], axis=1)

    def _falsified(self, points, owner):
        """(point, disjunct) of the first point that meets its disjunct in float64 and is confirmed, or None."""
        if not len(points):
            return None
        outputs = forward(self.network, points).reshape(len(points), -1)
        rows = self.rows[owner].reshape(len(owner), self.rows.shape[1], -1)
        meets = np.all(np.einsum("dso,do->ds", rows, outputs) <= self.thresholds[owner], axis=1)
        for i in np.flatnonzero(meets):
            if self.confirm(points[i], int(owner[i])):
                return points[i], int(owner[i])
        return None

    def _attack(self, points, owner, gap, boxes):
        """`_falsified` on PGD (`counterexamples.violation_descent`) from the points of the ATTACK_STARTS open
        domains of lowest gap, each towards its own disjunct within its box (`boxes`: (lower, upper))."""
        starts = np.argsort(gap, kind="stable")[:ATTACK_STARTS]
        starts = starts[gap[starts] <= 0]
        if not len(starts):
            return None
        lower, upper = boxes[0][starts], boxes[1][starts]
        offsets = np.where(np.isfinite(self.thresholds[owner[starts]]), self.thresholds[owner[starts]], PAD_OFFSET)
        x, value = violation_descent(self.network, points[starts], lower, upper, self.rows[owner[starts]], offsets,
                                     ATTACK_STEPS)
        hits = value <= 0
        return self._falsified(np.clip(x[hits], lower[hits], upper[hits]), owner[starts][hits])

    def run(self, time_limit, progress=None):
        """The `BabResult` within `time_limit` seconds; `progress(open domains, bounded, lower)` after each round."""
        start = time.perf_counter()
        deadline = start + time_limit

        def result(status, lower, found=None, reason=""):
            point, disjunct = found if found is not None else (None, -1)
            return BabResult(status, point, disjunct, lower, self.bounded, time.perf_counter() - start, reason)

        pending, open_, undecided, per_domain = self._roots(), None, 0, 0.0
        while True:
            if len(pending["owner"]):
                began = time.perf_counter()
                bounded, points, boxes = self._bound(pending)
                per_domain = (time.perf_counter() - began) / len(pending["owner"])
                gap = bounded["gap"]
                found = self._falsified(points[gap <= 0], pending["owner"][gap <= 0]) or self._attack(
                    points, pending["owner"], gap, boxes)
                if found is not None:
                    return result("falsified", -np.inf, found)
                kept = _take(bounded, gap <= 0)
                open_ = kept if open_ is None else _concat([open_, kept])
            count = len(open_["owner"])
            lower = float(open_["gap"].min()) if count else np.inf
            if progress is not None:
                progress(count, self.bounded, lower)
            if not count:
                return result("unknown", lower, reason=f"{undecided} leaves undecided") if undecided \
                    else result("verified", np.inf)
            if time.perf_counter() > deadline:
                return result("unknown", lower, reason=f"time limit: {count} domains open")
            if count > self.max_domains:
                return result("unknown", lower, reason=f"more than {self.max_domains} open domains")
            # A round bounds two children per picked domain: no more than the time left allows.
            batch = max(1, min(self.batch, int((deadline - time.perf_counter()) / (2 * per_domain + 1e-9))))
            order = np.argsort(open_["gap"], kind="stable")
            picked, open_ = _take(open_, order[:batch]), _take(open_, order[batch:])
            pending, found, leaves = self._branch(picked, deadline)
            if found is not None:
                return result("falsified", -np.inf, found)
            undecided += leaves


class BranchAndBound(_Search):
    """Branch and bound on ReLU splits, bounded by beta-CROWN (module docstring); `run` decides the disjuncts."""

    def __init__(self, verifier, box, rows, thresholds, confirm, **options):
        super().__init__(verifier, box, rows, thresholds, confirm, **options)
        self.root_bounds = root_bounds(verifier, self.box, self.rows)
        self.brancher = branching.Brancher({r: self.root_bounds[k] for r, k in self.relus.items()})
        self.lp_leaves = 0

    def _roots(self):
        count, num_specs = self.thresholds.shape
        root = {k: tuple(tf.constant(b) for b in self.root_bounds[k]) for k in self.relus.values()}
        alphas, betas = beta_crown.initial_parameters(self.verifier, root, 1, num_specs)
        return {"owner": np.arange(count),
                "signs": {r: np.zeros((count,) + self.root_bounds[k][0].shape[1:], np.int8)
                          for r, k in self.relus.items()},
                "alphas": {r: np.repeat(a.numpy(), count, 0) for r, a in alphas.items()},
                "betas": {r: np.repeat(b.numpy(), count, 0) for r, b in betas.items()}}

    def _bound(self, pending):
        """(bounded domains with their 'gap', 'scores' and optimised parameters, points, boxes)."""
        owner, count = pending["owner"], len(pending["owner"])
        boxes = tuple(np.repeat(b[None], count, 0) for b in self.box)
        bounds = {k: tuple(tf.constant(np.repeat(b, count, 0), self.dtype) for b in pair)
                  for k, pair in self.root_bounds.items()}
        result = beta_crown.bound_domains(self.verifier, beta_crown.box_of(*boxes, self.dtype), bounds,
                                          tf.constant(self.rows[owner], self.dtype), pending["signs"],
                                          pending["alphas"], pending["betas"], self.steps)
        self.bounded += count
        bounded = {"owner": owner, "signs": pending["signs"], "gap": self._gap(result.lower, owner),
                   "alphas": {r: a.numpy().astype(np.float32) for r, a in result.alphas.items()},
                   "betas": {r: b.numpy().astype(np.float32) for r, b in result.betas.items()},
                   "scores": {r: v.numpy() for r, v in result.scores.items()}}
        return bounded, result.points.numpy(), boxes

    def _branch(self, picked, deadline):
        """(children, counterexample or None, leaves left undecided): each domain split on its chosen ReLU;
        leaves (every unstable ReLU split) go to their LP."""
        if self.relus:
            position, index = self.brancher.choose(picked["signs"], picked["scores"])
        else:  # no ReLU to split: every domain is a leaf
            position = index = np.full(len(picked["owner"]), -1)
        leaves = 0
        for i in np.flatnonzero(position < 0):
            outcome = self._leaf(_take(picked, [i]), deadline)
            if isinstance(outcome, tuple):
                return None, outcome, leaves
            leaves += outcome == "unknown"
        twice = np.repeat(np.flatnonzero(position >= 0), 2)
        parents = _take(picked, twice)
        children = {"owner": parents["owner"], "alphas": parents["alphas"], "betas": parents["betas"],
                    "signs": self.brancher.split(parents["signs"], position[twice], index[twice])}
        return children, None, leaves

    def _leaf(self, domain, deadline):
        """'verified', 'unknown' or a (point, disjunct) counterexample for a domain with every unstable ReLU split."""
        self.lp_leaves += 1
        try:
            check_encodable(self.network)
        except SwtfError:
            return "unknown"
        signs = {r: tf.constant(s) for r, s in domain["signs"].items()}
        bounds = {k: (tf.constant(lo), tf.constant(hi)) for k, (lo, hi) in self.root_bounds.items()}
        clamped = beta_crown.clamped_bounds(self.verifier, bounds, signs)
        owner = int(domain["owner"][0])
        live = np.isfinite(self.thresholds[owner])
        encoding = Encoding(self.network, affine_maps(self.network), self.box,
                            {k: (lo.numpy()[0], hi.numpy()[0]) for k, (lo, hi) in clamped.items()})
        solution = encoding.minimize_violation(self.rows[owner][live].reshape(int(live.sum()), -1),
                                               self.thresholds[owner][live], deadline - time.perf_counter())
        if solution.bound > LEAF_TOL:
            return "verified"
        if solution.point is not None and solution.value <= 0:
            point = np.clip(solution.point, *self.box)
            if self._falsified(point[None], domain["owner"]) is not None:
                return point, owner
        return "unknown"


class InputSplitting(_Search):
    """Branch and bound on input splits, for inputs of few dimensions (module docstring).

    A domain is a sub-box; each is bounded by alpha-CROWN with fixed intermediate bounds (its own CROWN
    intermediate bounds over the sub-box, intersected with IBP's) and split in halves along the input
    dimension j of largest |a_j| (u_j - l_j), with a the bound's coefficients on the input: the dimension
    whose width costs the bound most. A sub-box narrower than MIN_WIDTH in every dimension is left undecided.
    """

    def _roots(self):
        count = len(self.thresholds)
        return {"owner": np.arange(count), "lower": np.repeat(self.box[0][None], count, 0),
                "upper": np.repeat(self.box[1][None], count, 0)}

    def _bound(self, pending):
        owner, count = pending["owner"], len(pending["owner"])
        inputs = beta_crown.box_of(pending["lower"], pending["upper"], self.dtype)
        bounds, _ = self.verifier.intermediate_bounds(inputs, tighten_with_ibp=True)
        num_specs = self.thresholds.shape[1]
        alphas, betas = beta_crown.initial_parameters(self.verifier, {k: bounds[k] for k in self.relus.values()},
                                                      count, num_specs)
        signs = {r: np.zeros(alphas[r].shape[:1] + alphas[r].shape[2:], np.int8) for r in alphas}
        result = beta_crown.bound_domains(self.verifier, inputs, bounds, tf.constant(self.rows[owner], self.dtype),
                                          signs, alphas, betas, self.steps)
        self.bounded += count
        bounded = dict(pending, gap=self._gap(result.lower, owner), weights=np.abs(result.coefficients.numpy()))
        return bounded, result.points.numpy(), (pending["lower"], pending["upper"])

    def _branch(self, picked, deadline):
        width = (picked["upper"] - picked["lower"]).reshape(len(picked["owner"]), -1)
        score = picked["weights"].reshape(width.shape) * width
        splittable = width > MIN_WIDTH
        leaves = ~splittable.any(axis=1)
        score = np.where(splittable, score + MIN_WIDTH * width, -np.inf)  # a zero coefficient still splits
        twice = np.repeat(np.flatnonzero(~leaves), 2)
        children = _take(picked, twice)
        dimension = np.argmax(score[twice], axis=1)
        rows = np.arange(len(twice))
        lower = children["lower"].reshape(len(twice), -1).copy()
        upper = children["upper"].reshape(len(twice), -1).copy()
        middle = (lower[rows, dimension] + upper[rows, dimension]) / 2
        first = rows % 2 == 0
        upper[rows[first], dimension[first]] = middle[first]
        lower[rows[~first], dimension[~first]] = middle[~first]
        children = {"owner": children["owner"], "lower": lower.reshape(children["lower"].shape),
                    "upper": upper.reshape(children["upper"].shape)}
        return children, None, int(leaves.sum())


def branch_and_bound(verifier, box, rows, thresholds, confirm, **options):
    """The search for a problem (module docstring): input splitting where the input has at most
    INPUT_SPLIT_MAX_DIMS dimensions, else ReLU splitting."""
    if math.prod(verifier.network.input_shape) <= INPUT_SPLIT_MAX_DIMS:
        return InputSplitting(verifier, box, rows, thresholds, confirm, **options)
    return BranchAndBound(verifier, box, rows, thresholds, confirm, **options)


def robustness_problem(label, num_classes, margins=None):
    """(rows (P, 1, K), thresholds (P, 1)): one disjunct f_y - f_j <= 0 per class j != y, leaving out the
    classes whose margin lower bound in `margins` (K,) is already positive."""
    classes = [j for j in range(num_classes) if j != label and (margins is None or not margins[j] > 0)]
    rows = np.zeros((len(classes), 1, num_classes))
    rows[np.arange(len(classes)), 0, label] = 1.0
    rows[np.arange(len(classes)), 0, classes] = -1.0
    return rows, np.zeros((len(classes), 1))


def verify_points(model, verifier, x, y, boxes, time_limit, margins=None, progress=None):
    """A `BabResult` per point: is every input of its box classified as its label (f_y > f_j for all j)?

    Args:
      model: the model as given (a Keras model is re-run in float32 on a candidate counterexample).
      verifier: its network's float64 `Verifier`.
      x, y: (N, *input shape) points and (N,) labels; boxes: (lower, upper), each (N, *input shape).
      time_limit: seconds per point.
      margins: optional (N, K) margin lower bounds already computed (e.g. alpha-CROWN's): classes they
        prove need no branching, and a point they prove entirely is 'verified' without BaB.
    """
    network = verifier.network
    results = []
    for n in range(len(x)):
        rows, thresholds = robustness_problem(int(y[n]), network.output_size, None if margins is None else margins[n])
        if not len(rows):
            results.append(BabResult("verified", None, -1, np.inf, 0, 0.0, ""))
            continue
        bab = branch_and_bound(verifier, (boxes[0][n], boxes[1][n]), rows, thresholds,
                               lambda point, p, label=int(y[n]): misclassified_by_both(model, network, point, label))
        results.append(bab.run(time_limit, progress))
    return results
