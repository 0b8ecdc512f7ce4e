"""Certification throughput through the Ray engine: 1 against 2 local workers, and Ray's overhead at 1 worker.

One run, the same points and model throughout: a briefly trained digits shallow_cnn is certified (CROWN
radii, certified accuracy at eps, the PGD cross-check) by `--mode=certify`'s own code path, three ways:

    in-process      --engine=inprocess --num_shards=1
    ray, 1 worker   --engine=ray --num_shards=1   on a local cluster of 1 CPU
    ray, 2 workers  --engine=ray --num_shards=2   on a local cluster of 2 CPUs

Each is run `--repeats` times after one untimed call that starts the workers and traces the compiled
functions (reported separately as the cold call); the median wall time of the whole job (shards, merge,
outputs, plots) is reported with points per second. The merged radii of every way must be identical.
On a machine whose cores other processes share, expect the 2-worker ratio to sit below 2.

    python benchmarks/scale_bench.py --points 120 --repeats 3
"""

import argparse
import os
import statistics
import tempfile
import time

from absl import flags
from absl.testing import flagsaver

from swtf import config as config_lib
from swtf import io, models, runs, train
from swtf.data import load_dataset
from swtf.modes import certify as certify_mode


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=120, help="test points certified")
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs per way (after one untimed)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the digits model")
    return parser.parse_args()


def trained_run(folder, epochs):
    data = load_dataset("digits", seed=0)
    model = models.build("shallow_cnn", data.input_shape, data.num_classes, seed=0)
    train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val),
              options=train.TrainOptions(epochs=epochs, seed=0), quiet=True)
    runs.save_trained(folder, "student", model, {})


def certify_job(run_dir, points, **distribute):
    """Runs --mode=certify on the run; returns (seconds, radii)."""
    with flagsaver.flagsaver(mode="certify", dataset="digits", quiet=True, run_dir=run_dir, num_points=points,
                             eps=0.02, **distribute):
        config = config_lib.config_from_flags(flags.FLAGS, certify_mode.options_from_flags(flags.FLAGS))
        start = time.perf_counter()
        certify_mode.run(config)
        seconds = time.perf_counter() - start
    rows = io.read_json(os.path.join(run_dir, "certify", "student.json"))["points"]
    return seconds, [row["radius"] for row in rows]


def measure(label, run_dir, args, **distribute):
    cold, radii = certify_job(run_dir, args.points, **distribute)
    times = []
    for _ in range(args.repeats):
        seconds, again = certify_job(run_dir, args.points, **distribute)
        assert again == radii, f"{label}: radii changed between runs"
        times.append(seconds)
    return {"way": label, "cold_s": cold, "median_s": statistics.median(times), "radii": radii}


def on_local_cluster(num_cpus, fn):
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    try:
        return fn()
    finally:
        ray.shutdown()


def main():
    args = parse_args()
    flags.FLAGS.mark_as_parsed()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as run_dir:
        trained_run(run_dir, args.epochs)
        results = [measure("in-process", run_dir, args)]
        results.append(on_local_cluster(1, lambda: measure("ray, 1 worker", run_dir, args, engine="ray")))
        results.append(on_local_cluster(2, lambda: measure("ray, 2 workers", run_dir, args, engine="ray",
                                                           num_shards=2)))
    assert all(r["radii"] == results[0]["radii"] for r in results), "the ways disagree on the radii"
    print(f"\ncertify --method=crown, shallow_cnn on digits, {args.points} points, {os.cpu_count()} CPUs; "
          f"median of {args.repeats} jobs after one untimed (cold) job; load average before/after "
          f"{load_before:.1f}/{os.getloadavg()[0]:.1f} (other processes share the cores)")
    print(f"{'way':<16}{'cold s':>9}{'median s':>10}{'points/s':>10}")
    for r in results:
        print(f"{r['way']:<16}{r['cold_s']:>9.2f}{r['median_s']:>10.2f}{args.points / r['median_s']:>10.1f}")
    inprocess, one, two = (r["median_s"] for r in results)
    print(f"2 workers / 1 worker throughput: {one / two:.2f}x")
    print(f"ray overhead at 1 worker vs in-process: {one - inprocess:+.2f} s ({one / inprocess:.2f}x time)")
    print(f"identical radii in all three ways: yes ({sum(r > 0 for r in results[0]['radii'])} of {args.points} "
          f"points certified above 0)")


if __name__ == "__main__":
    main()
