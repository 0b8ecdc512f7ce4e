"""Runs VNN-COMP instances (ONNX network, VNN-LIB property, timeout) and tabulates the verdicts.

Each network is translated once (its first load, `load_seconds`, is not charged to the instance, as
VNN-COMP's preparation time is not); every instance re-checks the network against onnxruntime on its
own input box and parses its property within its timeout. An instance whose files cannot be used gets
the result `error` and the one-line reason, and the run goes on.
"""

import time

from swtf.errors import SwtfError
from swtf.onnx import check_against_runtime, from_onnx
from swtf.vnnlib.parser import read_vnnlib
from swtf.vnnlib.verify import verify_property

COLUMNS = ("onnx", "vnnlib", "timeout", "result", "decided_by", "load_seconds", "seconds", "message")


def run_instance(onnx_path, vnnlib_path, timeout, networks, *, seed=0):
    """(CSV row, Verdict or None) of one instance; `networks` caches {onnx path: OnnxNetwork}."""
    row = {"onnx": onnx_path, "vnnlib": vnnlib_path, "timeout": timeout, "load_seconds": 0.0}
    start = time.perf_counter()
    try:
        prop = read_vnnlib(vnnlib_path)
        hull = prop.input_hull() if prop.disjuncts else (None, None)
        if onnx_path not in networks:
            loading = time.perf_counter()
            networks[onnx_path] = from_onnx(onnx_path, *hull, seed=seed)
            row["load_seconds"] = time.perf_counter() - loading
            start += row["load_seconds"]
        else:
            check_against_runtime(networks[onnx_path], *hull, seed=seed)
        remaining = timeout - (time.perf_counter() - start)
        verdict = verify_property(networks[onnx_path], prop, remaining, seed=seed)
    except SwtfError as err:
        row.update(result="error", decided_by="", seconds=time.perf_counter() - start, message=str(err))
        return row, None
    row.update(result=verdict.result, decided_by=verdict.decided_by, seconds=time.perf_counter() - start,
               message=verdict.message)
    return row, verdict


def run_instances(instances, *, seed=0, report=None):
    """CSV rows of every (onnx, vnnlib, timeout) instance; `report(row)` is called after each."""
    networks, rows = {}, []
    for onnx_path, vnnlib_path, timeout in instances:
        row, _ = run_instance(onnx_path, vnnlib_path, timeout, networks, seed=seed)
        rows.append(row)
        if report is not None:
            report(row)
    return rows


def summary(rows):
    """{result: count} for every result seen, plus total seconds (instances and loads)."""
    counts = {}
    for row in rows:
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    return counts, sum(row["seconds"] + row["load_seconds"] for row in rows)
