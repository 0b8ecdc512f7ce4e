"""VNN-COMP benchmark run: verdicts and times of `swtf.vnnlib` on an instances CSV within its timeouts.

Runs every instance (or `--limit` of them from `--skip`) of the VNN-COMP 2021 `mnistfc` benchmark by
default, each within the timeout its CSV gives (times `--timeout_scale`), and prints one line per instance
and the totals: instances solved (unsat + sat), unsat, sat, unknown/timeout, and total wall time (network
loads included). Per network, the solved counts stand next to VNN-COMP 2021's published ones, and every
verdict is compared with the published verdict (`data/mnistfc_2021_verdicts.csv`: alpha-beta-CROWN's, or
where it timed out the other tools' agreed one, RPM left out as unsound): a `sat` or `unsat` that
contradicts it is a WRONG verdict.

    python benchmarks/vnncomp_bench.py --limit 30              # the 256x2 instances
    python benchmarks/vnncomp_bench.py --instances ../shared/vnncomp/test/test_instances.csv
"""

import argparse
import csv
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from swtf import io  # noqa: E402
from swtf.vnnlib import benchmark  # noqa: E402
from swtf.vnnlib.results import read_instances  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "shared", "vnncomp", "mnistfc", "mnistfc_instances.csv")
PUBLISHED = os.path.join(HERE, "data", "mnistfc_2021_verdicts.csv")
# VNN-COMP 2021 mnistfc solved counts over its 89 scored instances (Bak et al., arXiv:2109.00498).
PUBLISHED_COUNTS = {"alpha-beta-CROWN (GPU)": {"256x2": 30, "256x4": 22, "256x6": 18, "all": 70},
                    "VeriNet": {"all": 60}, "ERAN": {"all": 56}, "nnenum": {"all": 47}}


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

    published = published_verdicts()
    rows = benchmark.run_instances(instances, report=report)
    wall = time.perf_counter() - start
    counts, _ = benchmark.summary(rows)
    solved = counts.get("unsat", 0) + counts.get("sat", 0)
    print(f"\n{len(rows)} instances from {args.instances}: solved {solved} (unsat {counts.get('unsat', 0)}, "
          f"sat {counts.get('sat', 0)}), unknown {counts.get('unknown', 0)}, timeout {counts.get('timeout', 0)}, "
          f"error {counts.get('error', 0)}; total {wall:.1f} s (timeouts x{args.timeout_scale:g})")
    by_network = {}
    wrong = []
    for row in rows:
        name = os.path.basename(row["onnx"]).replace("mnist-net_", "").replace(".onnx", "")
        tally = by_network.setdefault(name, {"unsat": 0, "sat": 0, "instances": 0})
        tally["instances"] += 1
        if row["result"] in ("sat", "unsat"):
            tally[row["result"]] += 1
            expected = published.get((os.path.basename(row["onnx"]), os.path.basename(row["vnnlib"])))
            if expected in ("sat", "unsat") and expected != row["result"]:
                wrong.append(f"{name} {os.path.basename(row['vnnlib'])}: {row['result']}, published {expected}")
    for name, tally in sorted(by_network.items()):
        published_solved = PUBLISHED_COUNTS["alpha-beta-CROWN (GPU)"].get(name, "-")
        print(f"  {name}: solved {tally['sat'] + tally['unsat']} of {tally['instances']} (unsat {tally['unsat']}, "
              f"sat {tally['sat']}); alpha-beta-CROWN 2021: {published_solved}")
    print("  VNN-COMP 2021, all 89 scored: " + ", ".join(f"{tool} {c['all']}" for tool, c in PUBLISHED_COUNTS.items()))
    print(f"  wrong verdicts against the published ones: {len(wrong)}" + "".join(f"\n    WRONG {w}" for w in wrong))
    if args.output:
        io.write_csv(args.output, rows, benchmark.COLUMNS)


def published_verdicts():
    """{(onnx file name, vnnlib file name): 'sat' / 'unsat' / 'unknown'} as published for VNN-COMP 2021."""
    with open(PUBLISHED) as f:
        return {(row["onnx"], row["vnnlib"]): row["verdict"] for row in csv.DictReader(f)}


if __name__ == "__main__":
    main()
