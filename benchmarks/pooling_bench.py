"""Certifying max-pooled networks: time, the dominant-input rule's share, and IBP / CROWN / alpha tightness.

1. The original study's CIFAR-10 teacher, cifar_cnn (550,570 parameters, ~129k ReLU and max-pool neurons),
   trained `--cifar_epochs` on `--train_limit` images of the cifar10.npz in `--data_dir`: one CROWN bound
   computation (all margins) on the first `--cifar_points` test points at each eps of `--cifar_eps`, its time
   and the share of certified points, and per max-pool layer the share of pooling windows whose output the
   dominant-input rule passes through exactly (l_j >= u_i for every other input). With `--cifar_radius`,
   also the CROWN certified radius of those points (bisection; each step costs about one bound computation).
2. The default digits study's teacher family (cifar_cnn scaled to 8x8: blocks 8-8, 16-16, 32-32, Dense64),
   trained briefly, and the pooled students scnn1 / scnn2: mean lower bound of the worst margin and
   certified share at each eps of `--digits_eps` for IBP, CROWN-IBP, CROWN and alpha-CROWN on
   `--digits_points` test points (every method's bound is sound; the order shows what each buys).

    python benchmarks/pooling_bench.py --cifar_points 2 --digits_points 200
"""

import argparse
import os
import time

import keras
import numpy as np
import tensorflow as tf

from swtf import certify, data, models
from swtf.certify import api
from swtf.certify.perturbation import input_set


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--cifar_epochs", type=int, default=2)
    parser.add_argument("--train_limit", type=int, default=10000)
    parser.add_argument("--cifar_points", type=int, default=2)
    parser.add_argument("--cifar_eps", default="0.0005,0.001,0.002")
    parser.add_argument("--cifar_radius", action="store_true", help="also the CROWN certified radius (slow)")
    parser.add_argument("--digits_points", type=int, default=200)
    parser.add_argument("--digits_eps", default="0.01,0.02,0.05")
    parser.add_argument("--skip_cifar", action="store_true")
    parser.add_argument("--skip_digits", action="store_true")
    return parser.parse_args()


def trained(name, dataset, epochs, **hparams):
    keras.utils.set_random_seed(0)
    model = models.build(name, dataset.input_shape, dataset.num_classes, seed=0, **hparams)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(dataset.x_test, dataset.y_test, verbose=0)[1]
    return model, accuracy


def worst_margins(network, x, y, eps, method):
    lower = certify.margin_bounds(network, x, y, eps, method=method)
    return np.min(lower, axis=1)


def dominant_shares(network, x, eps):
    """{max-pool node name: share of its windows (over points) decided by the dominant-input rule} under the
    CROWN relaxations at eps."""
    verifier = api.verifier_for(network)
    inputs = input_set("linf", tf.constant(x, tf.float64), tf.constant(np.full(len(x), eps)), (0.0, 1.0))
    relaxations = verifier.crown_relaxations(inputs)
    return {network.nodes[i].name: float(np.mean(relaxations[i].dominant.numpy()))
            for i in verifier.nonlinear_ids if network.nodes[i].op == "max_pool"}


def cifar_table(args):
    dataset = data.load_dataset("cifar10", data_dir=args.data_dir, train_limit=args.train_limit, test_limit=1000)
    start = time.perf_counter()
    model, accuracy = trained("cifar_cnn", dataset, args.cifar_epochs, dropout=(0.0, 0.0))
    network = certify.from_keras(model)
    print(f"cifar_cnn: {models.count_params(model):,} parameters, {network.nonlinear_count:,} nonlinear neurons, "
          f"{args.cifar_epochs} epochs on {args.train_limit} images ({time.perf_counter() - start:.0f} s), "
          f"test accuracy {accuracy:.3f}")
    x, y = dataset.x_test[:args.cifar_points], dataset.y_test[:args.cifar_points]
    for eps in (float(e) for e in args.cifar_eps.split(",")):
        for method in ("ibp", "crown"):
            start = time.perf_counter()
            worst = worst_margins(network, x, y, eps, method)
            seconds = time.perf_counter() - start
            print(f"  eps {eps:g} {method:6s} {seconds:8.1f} s for {len(x)} points ({seconds / len(x):.1f} s/point), "
                  f"certified {np.mean(worst > 0):.2f}, mean worst margin {np.mean(worst):.3f}")
        shares = ", ".join(f"{name} {share:.1%}" for name, share in dominant_shares(network, x, eps).items())
        print(f"  eps {eps:g} windows passed through exactly (dominant input): {shares}")
    if args.cifar_radius:
        start = time.perf_counter()
        radius = certify.certified_radius(network, x, y, method="crown", max_radius=0.01, tol=1e-4)
        print(f"  CROWN radius of {len(x)} points: mean {radius.mean():.5f} in {time.perf_counter() - start:.0f} s")


def digits_table(args):
    dataset = data.load_dataset("digits", seed=0)
    x, y = dataset.x_test[:args.digits_points], dataset.y_test[:args.digits_points]
    nets = [("cifar_cnn 8x8", trained("cifar_cnn", dataset, 40, blocks=[[8, 8], [16, 16], [32, 32]], dense=[64],
                                       dropout=(0.0, 0.0))),
            ("scnn1", trained("scnn1", dataset, 40, filters=8)),
            ("scnn2", trained("scnn2", dataset, 40, filters=(8, 16)))]
    print(f"\ndigits, {len(x)} test points: certified share / mean worst-margin lower bound (time)")
    for name, (model, accuracy) in nets:
        network = certify.from_keras(model)
        print(f"{name}: {models.count_params(model):,} parameters, test accuracy {accuracy:.3f}")
        for eps in (float(e) for e in args.digits_eps.split(",")):
            cells = []
            for method in ("ibp", "crown-ibp", "crown", "alpha-crown"):
                start = time.perf_counter()
                worst = worst_margins(network, x, y, eps, method)
                cells.append(f"{method} {np.mean(worst > 0):.3f} / {np.mean(worst):8.3f} "
                             f"({time.perf_counter() - start:.1f} s)")
            shares = ", ".join(f"{share:.0%}" for share in dominant_shares(network, x, eps).values())
            print(f"  eps {eps:g}: " + " | ".join(cells) + f" | dominant windows {shares}")


def main():
    args = parse_args()
    print(f"load at start: {os.getloadavg()[0]:.2f}")
    if not args.skip_cifar:
        cifar_table(args)
    if not args.skip_digits:
        digits_table(args)
    print(f"load at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
