"""What L1 filter pruning buys at inference: time, parameters and FLOPs of pruned vs unpruned student.

One student is built (its weights seeded; inference cost does not depend on their values), pruned by the
layer policy at each `--fractions` value, and every model runs the same batched, compiled predict
(`swtf.train.predict_logits`) on the same images: one warm-up call (tracing), then `--repeats` timed
calls; the median is compared with the unpruned student's median from the same run.

    python benchmarks/prune_bench.py --arch scnn2 --input 32,32,3 --images 2048
"""

import argparse
import statistics
import time

import numpy as np

from swtf import prune, train
from swtf.models import build


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="scnn2", help="zoo architecture of the student")
    parser.add_argument("--input", default="32,32,3", help="image shape H,W,C (32,32,3: CIFAR-sized)")
    parser.add_argument("--fractions", default="0.25,0.5,0.75", help="shares of each layer's filters removed")
    parser.add_argument("--images", type=int, default=2048, help="images per predict call")
    parser.add_argument("--batch", type=int, default=256, help="predict batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed predict calls per model (median)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def median_seconds(model, x, batch, repeats):
    """Median wall time of a batched predict over `x`, after one untimed warm-up call."""
    train.predict_logits(model, x, batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train.predict_logits(model, x, batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    args = parse_args()
    shape = tuple(int(d) for d in args.input.split(","))
    student = build(args.arch, shape, 10, seed=args.seed)
    x = np.random.default_rng(args.seed).uniform(size=(args.images,) + shape).astype(np.float32)
    models = [(0.0, student)] + [(f, prune.remove_filters(student, prune.layer_fraction(student, f)))
                                 for f in (float(v) for v in args.fractions.split(","))]
    print(f"{args.arch} on {shape}, {args.images} images, batch {args.batch}, median of {args.repeats} warm calls")
    print(f"{'removed':>8} {'params':>10} {'x params':>9} {'MFLOPs':>9} {'x FLOPs':>8} {'seconds':>8} "
          f"{'x time':>7} {'speed-up':>8}")
    base = None
    for fraction, model in models:
        params, flops = prune.count_params(model), prune.count_flops(model)
        seconds = median_seconds(model, x, args.batch, args.repeats)
        base = base or (params, flops, seconds)
        print(f"{fraction:>8.0%} {params:>10,} {params / base[0]:>9.3f} {flops / 1e6:>9.2f} {flops / base[1]:>8.3f} "
              f"{seconds:>8.3f} {seconds / base[2]:>7.3f} {base[2] / seconds:>7.2f}x")


if __name__ == "__main__":
    main()
