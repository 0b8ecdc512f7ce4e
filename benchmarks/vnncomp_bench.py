"""VNN-COMP benchmark run: verdicts and times of `swtf.vnnlib` on an instances CSV within its timeouts.

Runs every instance (or `--limit` of them from `--skip`) of the VNN-COMP 2021 `mnistfc` benchmark by
default, each within the timeout its CSV gives, and prints one line per instance and the totals: instances
solved (unsat + sat), unsat, sat, unknown/timeout, and total wall time (network loads included).

    python benchmarks/vnncomp_bench.py --limit 30              # the 256x2 instances
    python benchmarks/vnncomp_bench.py --instances ../shared/vnncomp/test/test_instances.csv
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from swtf import io  # noqa: E402
from swtf.vnnlib import benchmark  # noqa: E402
from swtf.vnnlib.results import read_instances  # noqa: E402

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "vnncomp", "mnistfc",
                       "mnistfc_instances.csv")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default=DEFAULT, help="VNN-COMP instances CSV (onnx,vnnlib,timeout)")
    parser.add_argument("--skip", type=int, default=0, help="skip the first this many instances")
    parser.add_argument("--limit", type=int, default=None, help="run at most this many instances")
    parser.add_argument("--timeout_scale", type=float, default=1.0, help="multiply every timeout (1: as the CSV)")
    parser.add_argument("--output", default=None, help="also write the per-instance results CSV here")
    return parser.parse_args()


def main():
    args = parse_args()
    instances = read_instances(args.instances)[args.skip:]
    instances = [(o, v, t * args.timeout_scale) for o, v, t in instances[:args.limit]]
    start = time.perf_counter()

    def report(row):
        print(f"{os.path.basename(row['onnx']):24s} {os.path.basename(row['vnnlib']):22s} {row['result']:8s} "
              f"{row['decided_by']:12s} {row['seconds']:7.1f} s (limit {row['timeout']:g} s)", flush=True)

    rows = benchmark.run_instances(instances, report=report)
    wall = time.perf_counter() - start
    counts, _ = benchmark.summary(rows)
    solved = counts.get("unsat", 0) + counts.get("sat", 0)
    print(f"\n{len(rows)} instances from {args.instances}: solved {solved} (unsat {counts.get('unsat', 0)}, "
          f"sat {counts.get('sat', 0)}), unknown {counts.get('unknown', 0)}, timeout {counts.get('timeout', 0)}, "
          f"error {counts.get('error', 0)}; total {wall:.1f} s")
    if args.output:
        io.write_csv(args.output, rows, benchmark.COLUMNS)


if __name__ == "__main__":
    main()
