"""Attack strength on real data: robust accuracy under swtf's PGD and APGD against cleverhans 4's PGD.

Small models trained briefly on real MNIST and CIFAR-10 (the `<name>.npz` copies in `--data_dir`), the first
`--points` test images, and per eps at equal steps and step size (2.5 * eps / steps): swtf's PGD from x (one
start), with `--restarts` starts, APGD at its default budget (100 steps, step 2 * eps), cleverhans's PGD from x
and from a random start. Lower is stronger. Real pixels (multiples of 1/255) are where a float32 ball needs care:
x - eps lands just above 0 at many pixels (`swtf.attack.lp_balls`).

    python benchmarks/attack_strength_bench.py --data_dir ../shared/data
"""

import argparse

import keras

import swtf.attack
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.models import build

# (data set, architecture, hyperparameters, L-inf radii)
CASES = (("mnist", "convex_cnn", {}, (0.05, 0.1, 0.15, 0.2, 0.3)),
         ("mnist", "snn", {}, (0.05, 0.1, 0.15, 0.2, 0.3)),
         ("cifar10", "snn", {"width": 256}, (1 / 255, 2 / 255, 4 / 255, 8 / 255)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="../shared/data", help="folder with mnist.npz and cifar10.npz")
    parser.add_argument("--points", type=int, default=200, help="test images attacked")
    parser.add_argument("--steps", type=int, default=20, help="PGD steps (cleverhans and swtf)")
    parser.add_argument("--restarts", type=int, default=5, help="starts of the multi-start PGD column")
    parser.add_argument("--train_limit", type=int, default=10000, help="training examples per model")
    parser.add_argument("--epochs", type=int, default=3)
    return parser.parse_args()


def main():
    args = parse_args()
    print(f"{args.points} test points, L-inf, PGD {args.steps} steps of 2.5*eps/steps; robust accuracy (lower = "
          f"stronger attack)")
    print(f"{'data':8} {'model':11} {'eps':>7} {'clean':>6} {'pgd':>6} {f'pgd x{args.restarts}':>7} {'apgd':>6} "
          f"{'ch x0':>6} {'ch rand':>7}")
    for name, arch, hparams, grid in CASES:
        data = load_dataset(name, data_dir=args.data_dir, seed=0, train_limit=args.train_limit,
                            test_limit=args.points)
        model = build(arch, data.input_shape, data.num_classes, seed=0, **hparams)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=64, verbose=0)
        x, y = data.x_test, data.y_test

        def robust(x_adv):
            return 1.0 - swtf.attack.is_adversarial(model, x_adv, y).mean()

        for eps in grid:
            budget = dict(steps=args.steps, step_size=2.5 * eps / args.steps)
            columns = (robust(x), robust(swtf.attack.pgd(model, x, y, eps, **budget)),
                       robust(swtf.attack.pgd(model, x, y, eps, restarts=args.restarts, **budget)),
                       robust(swtf.attack.apgd(model, x, y, eps)),
                       robust(cleverhans_pgd(model, x, y, eps, rand_init=False, **budget)),
                       robust(cleverhans_pgd(model, x, y, eps, rand_init=True, seed=0, **budget)))
            print(f"{name:8} {arch:11} {eps:7.4f} " + " ".join(f"{c:6.3f}" for c in columns), flush=True)


if __name__ == "__main__":
    main()
