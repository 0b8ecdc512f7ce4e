"""Complete verification by branch and bound on ReLU splits, bounded by beta-CROWN.

A problem is one input box and P disjuncts, each a set of rows: disjunct p is met at x when
<rows[p, s], f(x)> <= thresholds[p, s] for every row s (a counterexample), and refuted on a set when some
row's lower bound there exceeds its threshold. The problem is verified when every disjunct is refuted on
the whole box.

Each disjunct starts as one domain (the box). A round takes the BATCH domains whose best row is furthest
from refuted, splits each on one unstable ReLU (`branching`) into an active and an inactive child, and
bounds all children in one batched beta-CROWN call (`beta_crown`; alphas and betas inherited from the
parent). A child whose bound refutes its disjunct is closed; the others stay open. Every bounded domain
also offers the corner of the box where its bound is attained; the float64 reference `forward` checks it
against its disjunct, and a point that meets it is handed to `confirm` (e.g. re-run in float32), which
decides whether it is a counterexample.

A domain with every unstable ReLU split is linear on its subdomain: it is decided by a linear program
(`milp.Encoding` with the clamped bounds has no binaries; HiGHS), closed when the LP's proven bound exceeds
`LEAF_TOL` (exact up to the solver's tolerances, as `verify_exact` is), and its optimum is a candidate
counterexample.

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


class _Domains:
    """Open domains as NumPy arrays with one leading entry per domain."""

    def __init__(self, owner, signs, alphas, betas, lower, scores):
        self.owner, self.signs, self.alphas, self.betas = owner, signs, alphas, betas
        self.lower, self.scores = lower, scores

    def __len__(self):
        return len(self.owner)

    def take(self, index):
        def pick(values):
            return {r: v[index] for r, v in values.items()}
        return _Domains(self.owner[index], pick(self.signs), pick(self.alphas), pick(self.betas), self.lower[index],
                        pick(self.scores))

    @staticmethod
    def concat(parts):
        def join(name):
            return {r: np.concatenate([getattr(p, name)[r] for p in parts]) for r in getattr(parts[0], name)}
        return _Domains(np.concatenate([p.owner for p in parts]), join("signs"), join("alphas"), join("betas"),
                        np.concatenate([p.lower for p in parts]), join("scores"))


class BranchAndBound:
    """Branch and bound for one box of a network (module docstring); `run` decides the disjuncts."""

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
        self.root_bounds = root_bounds(verifier, self.box, self.rows)
        self.relus = beta_crown.relu_inputs(verifier)
        self.brancher = branching.Brancher({r: self.root_bounds[k] for r, k in self.relus.items()})
        self.bounded = 0
        self.lp_leaves = 0

    def _bound(self, owner, signs, alphas, betas):
        """Bounds `len(owner)` domains; returns (open `_Domains`, gap per domain, points)."""
        count = len(owner)
        inputs = beta_crown.box_of(np.repeat(self.box[0][None], count, 0), np.repeat(self.box[1][None], count, 0),
                                   self.dtype)
        bounds = {k: (tf.constant(np.repeat(lo, count, 0), self.dtype), tf.constant(np.repeat(hi, count, 0), self.dtype))
                  for k, (lo, hi) in self.root_bounds.items()}
        spec = tf.constant(self.rows[owner], self.dtype)
        result = beta_crown.bound_domains(self.verifier, inputs, bounds, spec, signs, alphas, betas, self.steps)
        self.bounded += count
        lower = result.lower.numpy()
        lower = np.where(np.isnan(lower), -np.inf, lower)
        gap = np.max(lower - self.thresholds[owner], axis=1)
        domains = _Domains(owner, signs, {r: a.numpy().astype(np.float32) for r, a in result.alphas.items()},
                           {r: b.numpy().astype(np.float32) for r, b in result.betas.items()}, gap,
                           {r: s.numpy() for r, s in result.scores.items()})
        return domains, gap, result.points.numpy()

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

    def _leaf(self, domain, deadline):
        """'verified', 'unknown' or a (point, disjunct) counterexample for a domain with every unstable ReLU split."""
        self.lp_leaves += 1
        try:
            check_encodable(self.network)
        except SwtfError:
            return "unknown"
        signs = {r: tf.constant(s) for r, s in domain.signs.items()}
        bounds = {k: (tf.constant(lo), tf.constant(hi)) for k, (lo, hi) in self.root_bounds.items()}
        clamped = beta_crown.clamped_bounds(self.verifier, bounds, signs)
        owner = int(domain.owner[0])
        live = np.isfinite(self.thresholds[owner])
        encoding = Encoding(self.network, affine_maps(self.network), self.box,
                            {k: (lo.numpy()[0], hi.numpy()[0]) for k, (lo, hi) in clamped.items()})
        solution = encoding.minimize_violation(self.rows[owner][live].reshape(int(live.sum()), -1),
                                               self.thresholds[owner][live], deadline - time.perf_counter())
        if solution.bound > LEAF_TOL:
            return "verified"
        if solution.point is not None and solution.value <= 0:
            point = np.clip(solution.point, *self.box)
            if self._falsified(point[None], domain.owner) is not None:
                return point, owner
        return "unknown"

    def run(self, time_limit, progress=None):
        """The `BabResult` within `time_limit` seconds; `progress(open domains, bounded, lower)` after each round."""
        start = time.perf_counter()
        deadline = start + time_limit

        def result(status, lower, found=None, reason=""):
            point, disjunct = found if found is not None else (None, -1)
            return BabResult(status, point, disjunct, lower, self.bounded, time.perf_counter() - start, reason)

        count, num_specs = len(self.thresholds), self.thresholds.shape[1]
        root = {k: tuple(tf.constant(b) for b in self.root_bounds[k]) for k in self.relus.values()}
        alphas, betas = beta_crown.initial_parameters(self.verifier, {k: (lo, hi) for k, (lo, hi) in root.items()},
                                                      1, num_specs)
        owner = np.arange(count)
        signs = {r: np.zeros((count,) + self.root_bounds[k][0].shape[1:], np.int8) for r, k in self.relus.items()}
        alphas = {r: np.repeat(a.numpy(), count, 0) for r, a in alphas.items()}
        betas = {r: np.repeat(b.numpy(), count, 0) for r, b in betas.items()}
        open_ = None
        undecided = 0
        while True:
            if len(owner):
                children, gap, points = self._bound(owner, signs, alphas, betas)
                found = self._falsified(points[gap <= 0], owner[gap <= 0])
                if found is not None:
                    return result("falsified", -np.inf, found)
                children = children.take(np.flatnonzero(gap <= 0))
                open_ = children if open_ is None else _Domains.concat([open_, children])
            lower = float(open_.lower.min()) if len(open_) else np.inf
            if progress is not None:
                progress(len(open_), self.bounded, lower)
            if not len(open_):
                return result("unknown", lower, reason=f"{undecided} leaves undecided by their LP") if undecided \
                    else result("verified", np.inf)
            if time.perf_counter() > deadline:
                return result("unknown", lower, reason=f"time limit: {len(open_)} domains open")
            if len(open_) > self.max_domains:
                return result("unknown", lower, reason=f"more than {self.max_domains} open domains")
            order = np.argsort(open_.lower, kind="stable")
            picked, open_ = open_.take(order[:self.batch]), open_.take(order[self.batch:])
            choice = self.brancher.choose(picked.signs, picked.scores)
            for i in np.flatnonzero(choice[0] < 0):
                outcome = self._leaf(picked.take([i]), deadline)
                if isinstance(outcome, tuple):
                    return result("falsified", -np.inf, outcome)
                undecided += outcome == "unknown"
            twice = np.repeat(np.flatnonzero(choice[0] >= 0), 2)
            parents = picked.take(twice)
            owner, alphas, betas = parents.owner, parents.alphas, parents.betas
            signs = self.brancher.split(parents.signs, choice[0][twice], choice[1][twice])


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
        bab = BranchAndBound(verifier, (boxes[0][n], boxes[1][n]), rows, thresholds,
                             lambda point, p, label=int(y[n]): misclassified_by_both(model, network, point, label))
        results.append(bab.run(time_limit, progress))
    return results
