"""`verify_property`: decides a VNN-LIB property on an ONNX network, with VNN-COMP's verdicts.

Stages, each on the disjuncts the previous ones left open, within the timeout:
  1. CROWN, then alpha-CROWN: a disjunct whose certified row bound exceeds its offset is refuted
     (`incomplete`); all refuted -> `unsat`, a proof for the real-valued network.
  2. PGD on the network (`falsify`): a candidate becomes a counterexample -> `sat` only once its float32
     input, inside the box, gives onnxruntime outputs that meet the disjunct (`confirm`).
  3. Branch and bound with beta-CROWN (`swtf.certify.bab`) on the open disjuncts of each input box,
     within the time left: every domain refuted -> the box's disjuncts are refuted; a domain's point that
     is confirmed on onnxruntime -> `sat`.
  4. Only if BaB ended 'unknown' with time left (a domain budget or a leaf its LP could not decide), MILP
     per still-open disjunct (`milp`): a confirmed optimum point -> `sat`; a proven bound above
     `MILP_TOL` refutes the disjunct; all refuted -> `unsat`. Running out of time -> `timeout`; a network
     too large to encode or an optimum within the tolerance of 0 -> `unknown`.
"""

import dataclasses
import time

import numpy as np

from swtf.certify import api
from swtf.certify.bab import branch_and_bound
from swtf.errors import SwtfError
from swtf.vnnlib import falsify, incomplete
from swtf.vnnlib.milp import MILP_TOL, decide, encode

RESULTS = ("unsat", "sat", "unknown", "timeout")
INCOMPLETE_METHODS = ("crown", "alpha-crown")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The result, the stage that decided it, wall seconds, and for `sat` the counterexample
    (x: float32 inputs as float64, ONNX order; y: onnxruntime's outputs)."""

    result: str
    decided_by: str
    seconds: float
    counterexample: tuple = None
    message: str = ""


def float32_in_box(x, lower, upper):
    """`x` clipped to the box and rounded to float32 without leaving it (None if the box holds no float32)."""
    x32 = np.clip(x, lower, upper).astype(np.float32)
    high, low = x32.astype(np.float64) > upper, x32.astype(np.float64) < lower
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    x64 = x32.astype(np.float64)
    return x64 if np.all((x64 >= lower) & (x64 <= upper)) else None


def confirm(net, disjunct, x):
    """(x, y) if `x` as float32 lies in the disjunct's box and onnxruntime's outputs meet its rows, else None."""
    x64 = float32_in_box(np.asarray(x, np.float64), disjunct.lower, disjunct.upper)
    if x64 is None:
        return None
    y = net.runtime_outputs(x64[None])[0]
    return (x64, y) if disjunct.satisfied(y[None])[0] else None


def _check_sizes(net, prop):
    if (prop.num_inputs, prop.num_outputs) != (net.input_size, net.output_size):
        raise SwtfError(f"the VNN-LIB property has {prop.num_inputs} inputs and {prop.num_outputs} outputs, the ONNX "
                        f"network {net.input_size} and {net.output_size}; they do not belong together")


def verify_property(net, prop, timeout, *, seed=0, pgd_steps=falsify.STEPS, pgd_restarts=falsify.RESTARTS,
                    complete=("bab", "milp")):
    """The `Verdict` on `prop` (a `Property`) for `net` (an `OnnxNetwork`) within `timeout` seconds."""
    _check_sizes(net, prop)
    start = time.perf_counter()
    deadline = start + timeout

    def verdict(result, by, message="", counterexample=None):
        return Verdict(result, by, time.perf_counter() - start, counterexample, message)

    disjuncts = list(prop.disjuncts)
    if not disjuncts:
        return verdict("unsat", "vnnlib", "no disjunct can be met (empty boxes or false constraints)")
    open_ids, slack = np.arange(len(disjuncts)), np.zeros(0)
    for method in INCOMPLETE_METHODS:
        slack = incomplete.slacks(net, [disjuncts[i] for i in open_ids], method)
        open_ids, slack = open_ids[~(slack > 0)], slack[~(slack > 0)]
        if not len(open_ids):
            return verdict("unsat", method)
        if time.perf_counter() > deadline:
            return verdict("timeout", method, "the bounds took the whole timeout")
    points, owners = falsify.candidates(net, [disjuncts[i] for i in open_ids], steps=pgd_steps,
                                        restarts=pgd_restarts, seed=seed)
    for x, owner in zip(points, owners):
        found = confirm(net, disjuncts[open_ids[owner]], x)
        if found is not None:
            return verdict("sat", "pgd", counterexample=found)
    open_ids = open_ids[np.argsort(slack)]
    if "bab" in complete:
        open_ids, decided = _bab_stage(net, disjuncts, open_ids, deadline, verdict)
        if decided is not None:
            return decided
    if "milp" not in complete:
        return verdict("unknown", complete[-1] if complete else "pgd",
                       f"{len(open_ids)} disjuncts neither refuted nor falsified")
    return _milp_stage(net, disjuncts, open_ids, deadline, verdict)


def _bab_stage(net, disjuncts, open_ids, deadline, verdict):
    """(disjunct ids BaB left open, None) or (_, the `Verdict`): branch and bound per input box."""
    verifier = api.verifier_for(net.network)
    left = []
    for members in incomplete.box_groups([disjuncts[i] for i in open_ids]).values():
        ids = open_ids[members]
        group = [disjuncts[i] for i in ids]
        num_rows = max(len(d.offset) for d in group)
        rows = np.zeros((len(group), num_rows) + net.network.nodes[-1].shape)
        thresholds = np.full((len(group), num_rows), np.inf)
        for p, d in enumerate(group):
            rows[p, :len(d.offset)] = net.output_rows(d.matrix)
            thresholds[p, :len(d.offset)] = d.offset
        box = tuple(b.numpy()[0] for b in incomplete.network_box(net, group[0]))
        confirmed = {}

        def check(point, p, group=group, confirmed=confirmed):
            confirmed[p] = confirm(net, group[p], net.from_network(point[None])[0])
            return confirmed[p] is not None

        result = branch_and_bound(verifier, box, rows, thresholds, check).run(deadline - time.perf_counter())
        if result.status == "falsified":
            return ids, verdict("sat", "bab", counterexample=confirmed[result.disjunct])
        if result.status == "unknown":
            if time.perf_counter() > deadline:
                return ids, verdict("timeout", "bab", result.reason)
            left.extend(ids)
    if not left:
        return open_ids[:0], verdict("unsat", "bab")
    return np.asarray(left), None


def _milp_stage(net, disjuncts, open_ids, deadline, verdict):
    encodings, unresolved = {}, []
    for i in open_ids:
        disjunct = disjuncts[i]
        key = (disjunct.lower.tobytes(), disjunct.upper.tobytes())
        if time.perf_counter() > deadline:
            return verdict("timeout", "milp", "out of time before every disjunct was solved")
        try:
            encoding = encodings.get(key) or encodings.setdefault(key, encode(net, disjunct))
        except SwtfError as err:
            return verdict("unknown", "milp", f"no MILP: {err}")
        solution = decide(net, encoding, disjunct, deadline - time.perf_counter())
        if solution.point is not None and solution.value <= 0:
            found = confirm(net, disjunct, solution.point)
            if found is not None:
                return verdict("sat", "milp", counterexample=found)
        if solution.bound > MILP_TOL:
            continue
        if solution.status == "time_limit":
            return verdict("timeout", "milp", f"disjunct {i}: {solution.message}")
        unresolved.append(f"disjunct {i}: optimum {solution.value:.3g}, bound {solution.bound:.3g}")
    if unresolved:
        return verdict("unknown", "milp", "; ".join(unresolved) + " (within the tolerance, or not reproduced "
                                                                    "on onnxruntime)")
    return verdict("unsat", "milp")
