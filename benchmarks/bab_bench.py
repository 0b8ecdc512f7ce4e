"""Complete verification by branch and bound (beta-CROWN): time against exact MILP, and radius tightness.

Both parts use small ReLU nets trained briefly on the embedded 8x8 digits data set (no download): `snn`
(one dense hidden layer), a two-hidden-layer MLP, and `shallow_cnn` (one strided convolution, dense head).

1. `--part=time`: time to a complete verdict, `bab.verify_points` (branch and bound, given the point's
   CROWN margin bounds, computed inside its timing) against `exact.verify_exact` (MILP, HiGHS), on the
   first `--time_points` test points whose CROWN certified radius r is in (0, max_radius), each at
   eps = f * r for every f of `--eps_factors` (near the true radius, where both work hardest), kept only
   where CROWN leaves eps open. The two are interleaved per problem (BaB first, then MILP, same point and
   eps) after one untimed call of each on the first, so compilation is not counted; seconds are wall-clock
   per call, with `--time_limit` seconds each. Per net: problems, verdicts agreeing (verified = certified,
   falsified = counterexample; 'verified' against 'counterexample' is a disagreement, printed loudly), the
   count of problems either left unknown, and the median and total seconds of each and the ratio of the totals
   MILP / BaB, over all problems and per BaB verdict.
2. `--part=radii`: mean certified radius (bisection to `--tol` up to `--max_radius`) of the first
   `--points` test points by crown, alpha-crown, alpha-crown-fixed (when `swtf.certify.METHODS` has it)
   and bab (`--timeout_per_point` seconds of branch and bound per point and bisection step), against the
   attack radius of `radius_bracket` (PGD at max_radius / 2**k, so it is a power-of-two grid value; inf
   where PGD breaks none). Per model: mean radius per method over all points and over the points with a
   finite attack radius, how many attack radii are inf, the share of the gap sum(attack - crown) each
   method closes on those points, the seconds per method (crown's include radius_bracket's attack), and
   per point the order crown <= alpha-crown <= bab <= attack and crown <= alpha-crown-fixed <= bab (every
   violation printed loudly; alpha-crown optimises the intermediate bounds' slopes too, alpha-crown-fixed
   only the final pass's, so neither need dominate the other: how often each is ahead is counted).

    python benchmarks/bab_bench.py --part=time
    python benchmarks/bab_bench.py --part=radii --points 20 --timeout_per_point 5
"""

import argparse
import os
import time

import keras
import numpy as np

from swtf import certify, data, models
from swtf.certify import api, bab
from swtf.certify.exact import input_box, verify_exact

# BaB verdict -> the MILP verdict it agrees with.
SAME_VERDICT = {"verified": "certified", "falsified": "counterexample"}
# (lower, higher): radii that must be ordered so at every point. BaB starts from alpha-CROWN's margins; full
# alpha-CROWN and alpha-crown-fixed optimise different slopes, so neither need dominate the other.
ORDER = [("crown", "alpha-crown"), ("crown", "alpha-crown-fixed"), ("alpha-crown", "bab"),
         ("alpha-crown-fixed", "bab"), ("bab", "attack")]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("time", "radii", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of each digits net")
    parser.add_argument("--time_points", type=int, default=6, help="points per net (part 1)")
    parser.add_argument("--eps_factors", default="1.1,1.25",
                        help="comma-separated: eps of part 1 = each * CROWN radius")
    parser.add_argument("--time_limit", type=float, default=30.0, help="seconds per point, BaB and MILP each")
    parser.add_argument("--points", type=int, default=20, help="test points per model (part 2)")
    parser.add_argument("--timeout_per_point", type=float, default=5.0,
                        help="seconds of BaB per point and bisection step (part 2)")
    parser.add_argument("--max_radius", type=float, default=0.25)
    parser.add_argument("--tol", type=float, default=1e-3)
    return parser.parse_args()


def mlp(dataset, hidden):
    """A plain Keras MLP with ReLU layers of widths `hidden`."""
    layers = [keras.Input(dataset.input_shape), keras.layers.Flatten()]
    layers += [keras.layers.Dense(width, activation="relu") for width in hidden]
    return keras.Sequential(layers + [keras.layers.Dense(dataset.num_classes)])


def trained(model, dataset, epochs):
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model, model.evaluate(dataset.x_test, dataset.y_test, verbose=0)[1]


def digits_nets(dataset, epochs):
    """[(name, model, test accuracy)] of the small nets both parts use, each trained from seed 0."""
    builders = [("snn 32", lambda: models.build("snn", dataset.input_shape, dataset.num_classes, seed=0, width=32)),
                ("mlp 32-16", lambda: mlp(dataset, (32, 16))),
                ("shallow_cnn 4-32", lambda: models.build("shallow_cnn", dataset.input_shape, dataset.num_classes,
                                                          seed=0, filters=(4,), dense=(32,)))]
    nets = []
    for name, build in builders:
        keras.utils.set_random_seed(0)
        nets.append((name, *trained(build(), dataset, epochs)))
    return nets


def describe(name, model, accuracy):
    network = certify.from_keras(model)
    print(f"{name}: {models.count_params(model):,} parameters, {network.nonlinear_count} ReLUs, "
          f"test accuracy {accuracy:.3f}")


def open_problems(model, dataset, args):
    """(x, y, eps): the first `--time_points` test points with CROWN radius r in (0, max_radius), each at
    eps = f * r for f in `--eps_factors`, where CROWN leaves the ball open."""
    radius = certify.certified_radius(model, dataset.x_test, dataset.y_test, method="crown",
                                      max_radius=args.max_radius, tol=args.tol)
    points = np.flatnonzero((radius > 0) & (radius < args.max_radius))[:args.time_points]
    factors = [float(f) for f in args.eps_factors.split(",")]
    index = np.repeat(points, len(factors))
    x, y, eps = dataset.x_test[index], dataset.y_test[index], np.tile(factors, len(points)) * radius[index]
    open_ = certify.margin_bounds(model, x, y, eps, method="crown").min(axis=1) <= 0
    return x[open_], y[open_], eps[open_]


def bab_verdict(model, verifier, x, y, eps, time_limit):
    """(status, seconds) of branch and bound on one point, its CROWN margins included in the time."""
    start = time.perf_counter()
    margins = api.margin_lower_bounds(verifier, x, y, eps, "linf", "crown", (0.0, 1.0))
    result = bab.verify_points(model, verifier, x, y, input_box(x, eps, (0.0, 1.0)), time_limit, margins)[0]
    return result.status, time.perf_counter() - start


def milp_verdict(model, x, y, eps, time_limit):
    """(status, seconds) of the MILP on one point."""
    start = time.perf_counter()
    result = verify_exact(model, x, y, eps, time_limit=time_limit)[0]
    return result.status, time.perf_counter() - start


def time_part(nets, dataset, args):
    print(f"\npart 1: time to a complete verdict, BaB vs MILP, eps = ({args.eps_factors}) x CROWN radius, "
          f"time limit {args.time_limit:g} s each")
    for name, model, accuracy in nets:
        describe(name, model, accuracy)
        verifier = api.verifier_for(certify.from_keras(model))
        x, y, eps = open_problems(model, dataset, args)
        if not len(x):
            print("  no problem left open by CROWN")
            continue
        bab_verdict(model, verifier, x[:1], y[:1], eps[:1], args.time_limit)  # untimed: compiles
        milp_verdict(model, x[:1], y[:1], eps[:1], args.time_limit)
        rows = []
        for n in range(len(x)):
            point = (x[n:n + 1], y[n:n + 1], eps[n:n + 1])
            rows.append(bab_verdict(model, verifier, *point, args.time_limit) + milp_verdict(model, *point,
                                                                                              args.time_limit))
        agree = sum(SAME_VERDICT.get(b) == m for b, _, m, _ in rows)
        unknown = sum("unknown" in (b, m) for b, _, m, _ in rows)
        for n, (b, _, m, _) in enumerate(rows):
            if {b, m} == {"verified", "counterexample"}:
                print(f"  !!! DISAGREEMENT on problem {n} (eps {eps[n]:.5f}): BaB {b}, MILP {m}")
        statuses = np.array([b for b, _, _, _ in rows])
        bab_seconds, milp_seconds = np.array([r[1] for r in rows]), np.array([r[3] for r in rows])
        print(f"  {len(rows)} problems (eps {eps.min():.4f}..{eps.max():.4f}): {agree} agree, {unknown} with an "
              f"unknown")
        for label, chosen in [("all", statuses == statuses)] + [(s, statuses == s) for s in np.unique(statuses)]:
            bab_total, milp_total = bab_seconds[chosen].sum(), milp_seconds[chosen].sum()
            print(f"  {label:9s} ({chosen.sum():2d}): BaB median {np.median(bab_seconds[chosen]):6.3f} s, total "
                  f"{bab_total:6.2f} s | MILP median {np.median(milp_seconds[chosen]):6.3f} s, total "
                  f"{milp_total:6.2f} s | MILP / BaB {milp_total / bab_total:5.2f}")


def radii_part(nets, dataset, args):
    methods = ["crown", "alpha-crown"] + (["alpha-crown-fixed"] if "alpha-crown-fixed" in certify.METHODS else [])
    methods.append("bab")
    print(f"\npart 2: mean certified radius vs attack radius, {args.points} test points, max_radius "
          f"{args.max_radius:g}, tol {args.tol:g}, BaB {args.timeout_per_point:g} s per point and step")
    x, y = dataset.x_test[:args.points], dataset.y_test[:args.points]
    options = dict(max_radius=args.max_radius, tol=args.tol)
    for name, model, accuracy in nets:
        describe(name, model, accuracy)
        start = time.perf_counter()
        bracket = certify.radius_bracket(model, x, y, method="crown", **options)
        radii, seconds = {"crown": bracket.certified}, {"crown": time.perf_counter() - start}
        for method in methods[1:]:
            start = time.perf_counter()
            radii[method] = certify.certified_radius(model, x, y, method=method,
                                                     timeout_per_point=args.timeout_per_point, **options)
            seconds[method] = time.perf_counter() - start
        finite = np.isfinite(bracket.attack)
        attack = bracket.attack[finite]
        gap = np.sum(attack - radii["crown"][finite])
        print(f"  attack radius: mean {attack.mean() if finite.any() else np.nan:.4f} over {finite.sum()} points, "
              f"inf on {np.sum(~finite)}")
        for method in methods:
            closed = np.sum(radii[method][finite] - radii["crown"][finite]) / gap if gap > 0 else np.nan
            print(f"  {method:18s} mean {radii[method].mean():.4f} (all), {radii[method][finite].mean():.4f} "
                  f"(finite attack); closes {closed:6.1%} of the gap; {seconds[method]:6.1f} s")
        radii["attack"] = bracket.attack
        order = [(low, high) for low, high in ORDER if low in radii and high in radii]
        violations = [(n, low, high) for low, high in order for n in range(len(x)) if radii[low][n] > radii[high][n]]
        print(f"  order {', '.join(f'{low} <= {high}' for low, high in order)}: {len(violations)} violations")
        for n, low, high in violations:
            values = ", ".join(f"{m} {r[n]:.5f}" for m, r in radii.items())
            print(f"  !!! ORDER VIOLATED at point {n}: {low} > {high} ({values})")
        if "alpha-crown-fixed" in radii:
            print(f"  alpha-crown-fixed above alpha-crown on "
                  f"{np.sum(radii['alpha-crown-fixed'] > radii['alpha-crown'])} points, below on "
                  f"{np.sum(radii['alpha-crown-fixed'] < radii['alpha-crown'])}")


def main():
    args = parse_args()
    print(f"load at start: {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    dataset = data.load_dataset("digits", seed=0)
    nets = digits_nets(dataset, args.epochs)
    print(f"trained {len(nets)} digits nets, {args.epochs} epochs each, in {time.perf_counter() - start:.0f} s")
    if args.part in ("time", "both"):
        time_part(nets, dataset, args)
    if args.part in ("radii", "both"):
        radii_part(nets, dataset, args)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; load at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
