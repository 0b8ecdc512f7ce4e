"""`--mode=verify`: decides VNN-LIB properties of ONNX networks, VNN-COMP style.

One instance: `--onnx=NET.onnx --vnnlib=PROP.vnnlib [--timeout=S] [--results_file=PATH]` prints the
verdict (`unsat`: the property holds; `sat`: a counterexample, re-checked on onnxruntime; `unknown`;
`timeout`) and writes the VNN-COMP results file. A benchmark: `--instances=INSTANCES.csv` runs every
row (network, property, timeout) and writes a results CSV (default `<run_dir>/verify/results.csv`).
The run's data set flags play no part.
"""

import dataclasses
import math
import os

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import io
from swtf.errors import SwtfError
from swtf.vnnlib import benchmark, results


@dataclasses.dataclass(frozen=True)
class Options:
    onnx: str
    vnnlib: str
    timeout: float
    results_file: str
    instances: str


def options_from_flags(fv):
    """Validates the verify flags into `Options` (one-line `SwtfError` on a bad value)."""
    if fv.instances and (fv.onnx or fv.vnnlib):
        raise SwtfError("pass either --instances or --onnx with --vnnlib, not both")
    if not fv.instances and not (fv.onnx and fv.vnnlib):
        raise SwtfError("--mode=verify needs --onnx=NET.onnx and --vnnlib=PROP.vnnlib, or --instances=FILE.csv")
    for name in ("onnx", "vnnlib", "instances"):
        path = getattr(fv, name)
        if path and not os.path.isfile(path):
            raise SwtfError(f"--{name}={path} is not a file")
    if not (math.isfinite(fv.timeout) and fv.timeout > 0):
        raise SwtfError(f"--timeout must be a positive number of seconds, got {fv.timeout}")
    return Options(onnx=fv.onnx, vnnlib=fv.vnnlib, timeout=float(fv.timeout), results_file=fv.results_file,
                   instances=fv.instances)


def _print_row(row):
    print(f"verify: {os.path.basename(row['onnx'])} {os.path.basename(row['vnnlib'])}: {row['result']}"
          f"{' (' + row['decided_by'] + ')' if row['decided_by'] else ''} in {row['seconds']:.1f} s"
          f"{': ' + row['message'] if row['message'] and row['result'] != 'unsat' else ''}")


def run(config):
    opts = config.options
    if opts.instances:
        rows = benchmark.run_instances(results.read_instances(opts.instances), seed=config.seed, report=_print_row)
        path = opts.results_file or os.path.join(config.run_dir, "verify", "results.csv")
        io.write_csv(path, rows, benchmark.COLUMNS)
        counts, seconds = benchmark.summary(rows)
        print(f"verify: {len(rows)} instances: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              + f"; {seconds:.1f} s in all -> {path}")
        return
    row, verdict = benchmark.run_instance(opts.onnx, opts.vnnlib, opts.timeout, {}, seed=config.seed)
    if verdict is None:
        raise SwtfError(row["message"])
    _print_row(row)
    print(results.results_text(verdict), end="")
    if opts.results_file:
        results.write_results(opts.results_file, verdict)
