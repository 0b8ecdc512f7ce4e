"""Certified-radius throughput of swtf.certify: batched against an eager per-point loop, same run.

For a digits student (shallow_cnn, briefly trained) and a CIFAR-size convex_cnn (32x32x3, random
weights, or trained for --cifar_epochs on CIFAR-10), and each method: `certified_radius` on a batch
(after one untimed identical call, which compiles the graphs for every chunk width the search meets:
steady state, as in a long study), against the same algorithm run point by point with every tf.function
executed eagerly (`tf.config.run_functions_eagerly`), the baseline; both bisect from max_radius
(`counterexamples=False`) and give the same radii (checked). For CROWN methods, "vs dense" is the batched
speed-up of receptive-field patches over dense rows (`Verifier(patch_rows=False)`; same radii, checked).
"cex pts/s" is the batched throughput of the search that refutes radii past the nearest counterexample
a short PGD finds without verifying them (the default for crown and alpha-crown; same radii, checked). Peak memory is the
largest resident-set growth sampled during the batched call. A second table compares one IBP bound
evaluation with two forward passes of the same network (float64 TF, compiled), and with two passes of
the Keras model (float32).

A third table times full-CROWN `certified_radius` (max_radius 0.5, tol 1e-4) on the digits teacher
(convex_cnn, filters 32-32-64-64, kernels 3-4-3-4, strides 1-2-1-2, dense 256, trained briefly) for each
`--teacher_points` count, with the default verifier (intermediate CROWN only on neurons an enclosure
leaves undecided, convolution rows as patches), with dense rows ("dense") and, for counts up to
`--teacher_plain_points`, with the plain one (every neuron, dense rows), checking all give the same radii.

Goals: IBP within 3x of two forward passes; batched CROWN at least 10x the per-point loop.

    python benchmarks/certify_bench.py --digits_points 64 --cifar_points 4
    python benchmarks/certify_bench.py --methods crown --teacher_points 20,200 --teacher_plain_points 20
"""

import argparse
import contextlib
import os
import resource
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from swtf import models
from swtf.certify import api, as_network, certified_radius, margin_bounds
from swtf.certify.linear_ops import network_function
from swtf.certify.verifier import Verifier
from swtf.data import load_dataset


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ibp,crown,alpha-crown", help="comma-separated bound methods")
    parser.add_argument("--digits_points", type=int, default=64, help="digits points per batch")
    parser.add_argument("--cifar_points", type=int, default=4, help="CIFAR-size points per batch")
    parser.add_argument("--loop_points", type=int, default=4, help="points in the eager per-point loop (digits)")
    parser.add_argument("--cifar_loop_points", type=int, default=1, help="points in the eager loop (CIFAR)")
    parser.add_argument("--tol", type=float, default=1e-3, help="bisection tolerance (digits)")
    parser.add_argument("--cifar_tol", type=float, default=2e-3, help="bisection tolerance (CIFAR)")
    parser.add_argument("--cifar_max_radius", type=float, default=0.01, help="largest radius searched (CIFAR)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the digits student")
    parser.add_argument("--cifar_epochs", type=int, default=0, help="train the CIFAR-size net this many epochs "
                        "on the cifar10.npz in --data_dir (0: random weights on noise)")
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
                        help="folder with cifar10.npz")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of the forward/IBP comparison")
    parser.add_argument("--teacher_points", default="20", help="comma-separated point counts for the digits "
                        "teacher CROWN radius table ('' skips it)")
    parser.add_argument("--teacher_plain_points", type=int, default=0, help="also time the plain verifier "
                        "(every neuron bounded) for teacher point counts up to this (slow)")
    parser.add_argument("--teacher_epochs", type=int, default=15, help="training epochs of the digits teacher")
    parser.add_argument("--skip_radius_tables", action="store_true", help="only the digits teacher table")
    return parser.parse_args()


class PeakMemory:
    """Largest resident-set growth (MiB) over the `with` block, sampled every 5 ms from /proc."""

    def __enter__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._start = self._peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _sample(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.mib = (self._peak - self._start) / 2 ** 20


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def digits_case(args):
    data = load_dataset("digits", seed=0)
    model = models.build("shallow_cnn", data.input_shape, data.num_classes, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=64, verbose=0)
    x, y = data.x_test[:args.digits_points].astype(np.float64), data.y_test[:args.digits_points]
    return "digits shallow_cnn (trained)", model, x, y, args.loop_points, args.tol, 0.5, 0.02


def cifar_case(args):
    """Random weights on uniform noise, or with --cifar_epochs, trained on the CIFAR-10 copy in --data_dir
    (test images, true labels)."""
    model = models.build("convex_cnn", (32, 32, 3), 10, seed=0)
    if not args.cifar_epochs:
        x = np.random.default_rng(0).uniform(0, 1, (args.cifar_points, 32, 32, 3))
        y = np.argmax(np.asarray(model(x.astype(np.float32))), axis=1)
        name = "cifar convex_cnn (random)"
    else:
        data = load_dataset("cifar10", data_dir=args.data_dir, seed=0, test_limit=args.cifar_points)
        model.compile(optimizer=keras.optimizers.Adam(0.002),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data.x_train, data.y_train, epochs=args.cifar_epochs, batch_size=128, verbose=0)
        x, y = data.x_test.astype(np.float64), data.y_test
        name = f"cifar convex_cnn ({args.cifar_epochs} ep)"
    return name, model, x, y, args.cifar_loop_points, args.cifar_tol, args.cifar_max_radius, 2 / 255


def radius_row(network, x, y, method, loop_points, tol, max_radius):
    """Throughput of `certified_radius` for one method: bisection from `max_radius` batched and in an
    eager per-point loop; batched with receptive-field patches against dense rows (CROWN methods); and
    batched with the counterexample upper ends (the default) against plain bisection."""
    def radius(points, labels, counterexamples=False):
        return certified_radius(network, points, labels, method=method, tol=tol, max_radius=max_radius,
                                counterexamples=counterexamples)

    radius(x, y)  # compiles the graphs of every chunk width this search meets
    with PeakMemory() as memory:
        batched_seconds, radii = timed(lambda: radius(x, y))
    dense_rate = float("nan")
    if method != "ibp":
        with verifier_in_cache(network, Verifier(network, patch_rows=False)):
            radius(x, y)
            dense_seconds, dense_radii = timed(lambda: radius(x, y))
        assert np.array_equal(dense_radii, radii), "patches and dense rows disagree"
        dense_rate = len(x) / dense_seconds
    radius(x, y, counterexamples=True)
    counterexample_seconds, skipping = timed(lambda: radius(x, y, counterexamples=True))
    assert np.array_equal(skipping, radii), "skipping counterexample-refuted radii changed the radii"
    tf.config.run_functions_eagerly(True)
    try:
        loop_seconds, looped = timed(lambda: [radius(x[i:i + 1], y[i:i + 1])[0] for i in range(loop_points)])
    finally:
        tf.config.run_functions_eagerly(False)
    batched_rate, loop_rate = len(x) / batched_seconds, loop_points / loop_seconds
    return {"method": method, "batched": batched_rate, "loop": loop_rate, "ratio": batched_rate / loop_rate,
            "patches": batched_rate / dense_rate, "counterexamples": len(x) / counterexample_seconds,
            "memory": memory.mib, "agree": float(np.max(np.abs(np.asarray(looped) - radii[:loop_points]))),
            "mean_radius": float(np.mean(radii))}


def forward_vs_ibp(network, model, x, y, eps, repeats):
    """Median seconds of one IBP margin evaluation, of a float64 TF forward pass, of a Keras forward pass."""
    forward64 = tf.function(network_function(network, tf.float64), autograph=False)
    keras_forward = tf.function(lambda points: model(points, training=False), autograph=False)
    x64, x32 = tf.constant(x, tf.float64), tf.constant(x, tf.float32)
    calls = {"ibp": lambda: margin_bounds(network, x, y, eps, method="ibp"),
             "forward64": lambda: forward64(x64).numpy(), "keras": lambda: keras_forward(x32).numpy()}
    medians = {}
    for name, call in calls.items():
        call()
        medians[name] = float(np.median([timed(call)[0] for _ in range(repeats)]))
    return medians


@contextlib.contextmanager
def verifier_in_cache(network, verifier):
    """Makes `certified_radius` on `network` use `verifier` (float64) within the block."""
    saved = api._VERIFIERS.get(network)
    api._VERIFIERS[network] = {"float64": verifier}
    try:
        yield
    finally:
        if saved is None:
            api._VERIFIERS.pop(network, None)
        else:
            api._VERIFIERS[network] = saved


def teacher_table(args):
    """Seconds of full-CROWN certified_radius on the digits teacher: default vs plain verifier."""
    data = load_dataset("digits", seed=0)
    model = models.build("convex_cnn", data.input_shape, data.num_classes, filters=[32, 32, 64, 64],
                         kernel_size=[3, 4, 3, 4], strides=[1, 2, 1, 2], dense=[256], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.003),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=args.teacher_epochs, batch_size=64, verbose=0)
    network = as_network(model)
    print(f"\n{'digits teacher (trained), crown':34s} {'points':>6s} {'verifier':>9s} {'seconds':>8s} "
          f"{'s/point':>8s} {'mean r':>8s} {'max |dr|':>9s}")
    for count in [int(c) for c in args.teacher_points.split(",") if c]:
        x, y = data.x_test[:count].astype(np.float64), data.y_test[:count]
        runs = [("default", Verifier(network)), ("dense", Verifier(network, patch_rows=False))]
        if count <= args.teacher_plain_points:
            runs.append(("plain", Verifier(network, skip_stable=False)))
        radii = {}
        for label, verifier in runs:
            with verifier_in_cache(network, verifier):
                seconds, radii[label] = timed(lambda: certified_radius(network, x, y, method="crown",
                                                                        max_radius=0.5))
            gap = float(np.max(np.abs(radii[label] - radii["default"])))
            print(f"{'':34s} {count:6d} {label:>9s} {seconds:8.1f} {seconds / count:8.3f} "
                  f"{np.mean(radii[label]):8.4f} {gap:9.1e}", flush=True)


def main():
    args = parse_args()
    if args.teacher_points:
        teacher_table(args)
    if args.skip_radius_tables:
        return
    methods = args.methods.split(",")
    print(f"{'case':30s} {'method':12s} {'batch':>5s} {'batched pts/s':>14s} {'eager loop pts/s':>17s} "
          f"{'ratio':>7s} {'vs dense':>9s} {'cex pts/s':>10s} {'peak MiB':>9s} {'max |dr|':>9s} "
          f"{'mean r':>8s}")
    ibp_rows = []
    for build_case in (digits_case, cifar_case):
        name, model, x, y, loop_points, tol, max_radius, eps = build_case(args)
        network = as_network(model)
        for method in methods:
            row = radius_row(network, x, y, method, loop_points, tol, max_radius)
            print(f"{name:30s} {method:12s} {len(x):5d} {row['batched']:14.2f} {row['loop']:17.3f} "
                  f"{row['ratio']:7.1f} {row['patches']:9.1f} {row['counterexamples']:10.2f} {row['memory']:9.1f} "
                  f"{row['agree']:9.1e} {row['mean_radius']:8.4f}",
                  flush=True)
        ibp_rows.append((name, len(x), forward_vs_ibp(network, model, x, y, eps, args.repeats)))
    print(f"\n{'case':30s} {'batch':>5s} {'IBP ms':>8s} {'fwd64 ms':>9s} {'IBP/(2 fwd64)':>14s} "
          f"{'keras ms':>9s} {'IBP/(2 keras)':>14s}")
    for name, n, t in ibp_rows:
        print(f"{name:30s} {n:5d} {1e3 * t['ibp']:8.2f} {1e3 * t['forward64']:9.2f} "
              f"{t['ibp'] / (2 * t['forward64']):14.2f} {1e3 * t['keras']:9.2f} {t['ibp'] / (2 * t['keras']):14.2f}")
    print(f"\nprocess peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
