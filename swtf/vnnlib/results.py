"""VNN-COMP results: the per-instance results file and the instances CSV of a benchmark.

Results file: the first line is the verdict (`unsat`, `sat`, `unknown`, `timeout`); after `sat` comes the
counterexample as one S-expression of (name value) pairs, inputs then outputs:

    sat
    ((X_0 0.1)
     (X_1 -0.25)
     (Y_0 3.5))

Values are printed with `repr`, which round-trips the float32 inputs and onnxruntime's outputs exactly.
"""

import csv
import os

from swtf import io
from swtf.errors import SwtfError


def results_text(verdict):
    lines = [verdict.result]
    if verdict.result == "sat":
        x, y = verdict.counterexample
        pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)] + [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
        lines.append("(" + "\n ".join(pairs) + ")")
    return "\n".join(lines) + "\n"


def write_results(path, verdict):
    io.write_text(path, results_text(verdict))


def read_instances(path):
    """[(onnx path, vnnlib path, timeout seconds)] of an instances CSV; paths resolved from its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except OSError as err:
        raise SwtfError(f"cannot read instances CSV {path}: {err.strerror}") from None
    instances = []
    for number, row in enumerate(rows, start=1):
        try:
            onnx_path, vnnlib_path, timeout = (cell.strip() for cell in row)
            timeout = float(timeout)
        except ValueError:
            raise SwtfError(f"{path} line {number}: expected 'model.onnx,property.vnnlib,timeout', got "
                            f"{','.join(row)!r}") from None
        instances.append((os.path.join(folder, onnx_path), os.path.join(folder, vnnlib_path), timeout))
    return instances
