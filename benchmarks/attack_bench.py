"""PGD speed and strength of swtf against cleverhans 4, on the same digits models and batch, same run.

For each architecture and norm: `--repeats` rounds in which each attack, in turn, is called twice on the
same batch at equal budget (eps, steps, step size, one start: swtf's first start is x, cleverhans's here
a random point) and the second call is timed. Interleaving exposes all attacks to the same load on a
shared machine; the untimed call absorbs one-off costs (tracing, and the kernel cache that the
cleverhans wrapper's `tf.random.set_seed` clears: the next compiled call re-instantiates its kernels,
about 0.1 s; the order of the attacks rotates from round to round). Ratios are medians of the per-round
ratios, steps per second medians of per-round times. Success is the fraction of the batch the model
misclassifies afterwards; "ch x0 succ" is cleverhans's default PGD, from x.

"bare st/s" is nothing but the model's gradient (the same graph function swtf's steps call), the
steepest-ascent step and the projection, compiled, the batch split into the same independent loops as
swtf's (`INDEPENDENT_PARTS`, which TF runs on two cores), with no random start and no strongest-iterate
tracking: about the fastest any attack running the model's own forward and backward kernels can step on
this machine. "bare/ch" is therefore the ceiling of
the swtf/cleverhans ratio for a model, and "swtf/bare" how much of it swtf reaches. On small conv nets
with max pooling the model's kernels are most of a step (TF's CPU input gradient of the convolution,
MaxPoolGrad and ReluGrad), so the ceiling is low there.

    python benchmarks/attack_bench.py --archs snn,scnn1 --steps 40 --batch 256
    python benchmarks/attack_bench.py --dataset mnist --data_dir ../shared/data --train_limit 10000 --linf_eps 0.15

The digits' pixels are multiples of 1/16; on real pixels (multiples of 1/255) x - eps lands just above 0 at
many pixels, which is where a float32 ball needs care (`swtf.attack.lp_balls`): read the success columns there.
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import swtf.attack
from swtf.attack import gradients, iterative, lp_balls
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.models import build



def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="digits, mnist, fashion_mnist, cifar10, ...")
    parser.add_argument("--data_dir", default=None, help="folder with <dataset>.npz copies (e.g. ../shared/data)")
    parser.add_argument("--train_limit", type=int, default=None, help="training examples kept (stratified)")
    parser.add_argument("--linf_eps", type=float, default=0.1, help="L-inf radius")
    parser.add_argument("--l2_eps", type=float, default=0.5, help="L2 radius")
    parser.add_argument("--archs", default="snn,scnn1", help="comma-separated zoo architectures")
    parser.add_argument("--norms", default="linf,l2", help="comma-separated threat models")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per model")
    parser.add_argument("--batch", type=int, default=256, help="test images attacked at once")
    parser.add_argument("--steps", type=int, default=40, help="PGD steps")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each attack once per round)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def trained_model(arch, data, epochs, seed):
    model = build(arch, data.input_shape, len(data.class_names), seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


def interleaved_seconds(attacks, repeats):
    """{name: [wall time of each round]} for `attacks` {name: callable}, each called twice in turn per
    round, the second call timed, in an order rotated from round to round (so that no attack always runs
    right after the same one); also returns each attack's last output."""
    outputs, times = {}, {name: [] for name in attacks}
    names = list(attacks)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            attack = attacks[name]
            attack()
            start = time.perf_counter()
            outputs[name] = attack()
            times[name].append(time.perf_counter() - start)
    return times, outputs


def median_ratio(slower, faster):
    return statistics.median(s / f for s, f in zip(slower, faster))


def bare_pgd(model, norm, steps, batch):
    """`steps` compiled iterations of gradient, steepest-ascent step and projection only, on a batch of
    `batch` rows split into independent loops as swtf splits it."""
    parts = iterative.independent_parts(batch)

    # The model's pass exactly as swtf calls it (`swtf.attack.gradients`), so that both run the same kernels.
    gradient = gradients.logits_and_gradient(lambda: model, model.input_shape_, "ce", False)

    def loop(x, y, eps, step_size):
        x_t, project = x, lp_balls.projection(x, eps, norm, (0.0, 1.0))
        for _ in tf.range(steps):
            x_t = project(x_t + step_size * lp_balls.steepest_ascent(gradient(x_t, y)[2], norm))
        return x_t

    @tf.function(input_signature=[tf.TensorSpec((None,) + model.input_shape_, tf.float32),
                                  tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.float64),
                                  tf.TensorSpec((), tf.float32)])
    def attack(x, y, eps, step_size):
        cuts = [tf.shape(x)[0] * i // parts for i in range(parts + 1)]
        return tf.concat([loop(x[a:b], y[a:b], eps, step_size) for a, b in zip(cuts, cuts[1:])], 0)

    return lambda x, y, eps: attack(tf.constant(x), tf.constant(y, tf.int32), eps, 2.5 * eps / steps).numpy()


def main():
    args = parse_args()
    data = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed, train_limit=args.train_limit)
    x, y = data.x_test[:args.batch], data.y_test[:args.batch]
    eps_of = {"linf": args.linf_eps, "l2": args.l2_eps}
    print(f"{args.dataset} test batch {len(x)}, {args.steps} PGD steps, step size 2.5*eps/steps, 1 start")
    header = f"{'arch':8} {'norm':5} {'eps':>5} {'clean acc':>9} {'swtf st/s':>10} {'ch st/s':>9} {'ratio':>6} " \
             f"{'bare st/s':>10} {'bare/ch':>7} {'swtf/bare':>9} {'swtf succ':>9} {'ch succ':>8} {'ch x0 succ':>10}"
    print(header)
    for arch in args.archs.split(","):
        model = trained_model(arch, data, args.epochs, args.seed)
        clean_error = np.mean(swtf.attack.predict_labels(model, x) != y)
        for norm in args.norms.split(","):
            budget = dict(eps=eps_of[norm], norm=norm, steps=args.steps, seed=args.seed, batch_size=args.batch)
            bare = bare_pgd(model, norm, args.steps, len(x))
            times, outputs = interleaved_seconds({
                "swtf": lambda: swtf.attack.pgd(model, x, y, **budget),
                "cleverhans": lambda: cleverhans_pgd(model, x, y, **budget),
                "bare": lambda: bare(x, y, eps_of[norm])}, args.repeats)
            ours, theirs = outputs["swtf"], outputs["cleverhans"]
            from_x = cleverhans_pgd(model, x, y, rand_init=False, **budget)
            ours_s, theirs_s, bare_s = (statistics.median(times[k]) for k in ("swtf", "cleverhans", "bare"))
            print(f"{arch:8} {norm:5} {eps_of[norm]:5.2f} {1 - clean_error:9.3f} {args.steps / ours_s:10.0f} "
                  f"{args.steps / theirs_s:9.0f} {median_ratio(times['cleverhans'], times['swtf']):5.2f}x "
                  f"{args.steps / bare_s:10.0f} {median_ratio(times['cleverhans'], times['bare']):6.2f}x "
                  f"{median_ratio(times['bare'], times['swtf']):8.2f}x "
                  f"{swtf.attack.is_adversarial(model, ours, y).mean():9.3f} "
                  f"{swtf.attack.is_adversarial(model, theirs, y).mean():8.3f} "
                  f"{swtf.attack.is_adversarial(model, from_x, y).mean():10.3f}")


if __name__ == "__main__":
    main()
