"""`--mode=attack`: accuracy under attack over an eps grid for a run's models, on the same test points.

Attacks every model named by `--attack_models` (default: all of the run's models: teacher, students,
pruned students) on the first `--attack_points` test points, at every radius of `--attack_eps`, once per
seed of `--attack_seeds` (the seeds of PGD's random restarts, which follow its first start at x; fgsm,
bim and mim start at x and run once, with the first seed). `--attack_backend=cleverhans` crafts the
examples with cleverhans 4's PGD instead, scored the same way. Writes `<run_dir>/attack/curves.{csv,json}`
(mean, std, min and max over seeds per model and eps; the JSON also keeps every seed's value) and
`<run_dir>/plots/attack_curves.png`.
"""

import dataclasses
import os

from swtf import cli_flags
from swtf import runs
from swtf.attack import curves
from swtf.attack import plots as attack_plots
from swtf.distribute import engine, records, sharded, shards
from swtf.distribute import flags as distribute_flags
from swtf.errors import SwtfError

DEFAULT_BATCH_SIZE = 256
PGD_RESTARTS = 2  # a start at x and one random start per seed (see swtf.attack.iterative)


@dataclasses.dataclass(frozen=True)
class Options:
    attack: str
    norm: str
    eps_grid: tuple
    models: tuple  # empty: all of the run's models
    num_points: int
    seeds: tuple
    steps: int
    restarts: int
    backend: str
    band: str
    batch_size: int = DEFAULT_BATCH_SIZE
    distribute: distribute_flags.DistributeOptions = distribute_flags.DistributeOptions()


def restarts_from_flags(fv):
    """--attack_restarts, or by default PGD_RESTARTS for swtf's PGD and APGD and 1 for attacks that start once."""
    if fv.attack_restarts is not None:
        return fv.attack_restarts
    restarting = (getattr(fv, "attack", "pgd") in curves.RANDOMIZED_ATTACKS
                  and getattr(fv, "attack_backend", "swtf") == "swtf")
    return PGD_RESTARTS if restarting else 1


def _check_backend(fv):
    if fv.attack_restarts is not None and fv.attack_restarts > 1 and fv.attack not in curves.RANDOMIZED_ATTACKS:
        raise SwtfError(f"--attack_restarts applies to --attack=pgd or apgd only; {fv.attack} starts at x, so use 1")
    if fv.attack_backend != "cleverhans":
        return
    if fv.attack != "pgd":
        raise SwtfError(f"--attack_backend=cleverhans runs only --attack=pgd, got --attack={fv.attack}")
    if restarts_from_flags(fv) != 1:
        raise SwtfError(f"--attack_backend=cleverhans has one start; use --attack_restarts=1, "
                        f"got {fv.attack_restarts}")
    if fv.attack_steps < 3:
        raise SwtfError(f"--attack_backend=cleverhans needs step size 2.5 * eps / steps <= eps, so "
                        f"--attack_steps >= 3, got {fv.attack_steps}")


def options_from_flags(fv):
    """Validates the attack flags (and the shared --attack_steps, --attack_restarts) into `Options`."""
    eps_grid = tuple(sorted(set(cli_flags.parse_numbers(fv.attack_eps, "attack_eps", float))))
    for eps in eps_grid:
        cli_flags.check_radius(eps, "attack_eps", fv.attack_norm, zero_ok=True)
    seeds = cli_flags.parse_numbers(fv.attack_seeds, "attack_seeds", int)
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise SwtfError(f"--attack_seeds must be distinct integers >= 0, got {','.join(fv.attack_seeds)}")
    if fv.attack_points < 1:
        raise SwtfError(f"--attack_points must be >= 1, got {fv.attack_points}")
    if fv.attack_steps < 1 or restarts_from_flags(fv) < 1:
        raise SwtfError(f"--attack_steps and --attack_restarts must be >= 1, got {fv.attack_steps} and "
                        f"{fv.attack_restarts}")
    _check_backend(fv)
    names = tuple(fv.attack_models)
    if not names or "all" in names and len(names) > 1:
        raise SwtfError(f"--attack_models must be 'all' or a list of model names, got {','.join(names)}")
    for name in names:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise SwtfError(f"--attack_models names must be letters, digits, '_' or '-', got {name!r}")
    batch_size = getattr(fv, "attack_batch_size", DEFAULT_BATCH_SIZE)
    if batch_size < 1:
        raise SwtfError(f"--attack_batch_size must be >= 1, got {batch_size}")
    distribute = distribute_flags.options_from_flags(fv)
    if distribute.num_shards > 1 and fv.attack_backend != "swtf":
        raise SwtfError(f"--attack_backend={fv.attack_backend} draws random starts for the whole batch, so its work "
                        f"cannot be sharded; use --num_shards=1 or --attack_backend=swtf")
    return Options(attack=fv.attack, norm=fv.attack_norm, eps_grid=eps_grid,
                   models=() if names == ("all",) else names, num_points=fv.attack_points,
                   seeds=seeds if fv.attack in curves.RANDOMIZED_ATTACKS else seeds[:1], steps=fv.attack_steps,
                   restarts=restarts_from_flags(fv), backend=fv.attack_backend, band=fv.attack_band,
                   batch_size=batch_size, distribute=distribute)


def attack_kwargs(opts):
    """The keyword arguments `robustness_curve` passes to the attack: only those the attack takes."""
    kwargs = {"norm": opts.norm}
    if opts.attack != "fgsm":
        kwargs["steps"] = opts.steps
    if opts.attack in curves.RANDOMIZED_ATTACKS and opts.backend == "swtf":
        kwargs["restarts"] = opts.restarts
    if opts.batch_size != DEFAULT_BATCH_SIZE:
        kwargs["batch_size"] = opts.batch_size
    return kwargs


def _describe_attack(opts):
    budget = "" if opts.attack == "fgsm" else f", {opts.steps} steps"
    restarts = f" x {attack_plots.count(opts.restarts, 'restart')}" if "restarts" in attack_kwargs(opts) else ""
    return f"{opts.attack} {opts.norm} ({opts.backend}{budget}{restarts})"


def _describe_curve(rows):
    """'clean 0.950 | eps 0.05: 0.812 [0.805, 0.820] | ...' from a model's summary rows."""
    parts = []
    for row in rows:
        spread = f" [{row['min']:.3f}, {row['max']:.3f}]" if row["seeds"] > 1 and row["eps"] > 0 else ""
        label = "clean" if row["eps"] == 0 else f"eps {row['eps']:g}:"
        parts.append(f"{label} {row['mean']:.3f}{spread}")
    return " | ".join(parts)


def _recorded(opts):
    """The options as the outputs record them: where the work ran is not part of the result."""
    return {key: value for key, value in dataclasses.asdict(opts).items() if key != "distribute"}


def shard_points(num_points, batch_size, num_shards, index):
    """(start, stop) of shard `index`: a contiguous run of whole attack batches, so that every point is
    attacked in the same batch, with the same random start, as in an unsharded run."""
    first, last = shards.point_range(-(-num_points // batch_size), num_shards, index)
    return first * batch_size, min(last * batch_size, num_points)


def attack_shard(config, settings, targets, num_shards, index):
    """Per-point outcomes of every model of `targets` (re-loaded from their paths) on shard `index`'s points."""
    from swtf import progress

    opts = config.options
    data = config.load_data()
    start, stop = shard_points(settings["points"], opts.batch_size, num_shards, index)
    x, y = data.x_test[start:stop], data.y_test[start:stop]
    empty = {"eps": list(opts.eps_grid), "seeds": list(opts.seeds),
             "correct": [[[] for _ in opts.seeds] for _ in opts.eps_grid]}
    with progress.Progress("attack", len(targets) * len(opts.eps_grid), unit="radius", quiet=config.quiet) as bar:
        def reporter(name):
            return lambda eps, accuracy: bar.step(f"{name} eps {eps:g}", f"accuracy {accuracy:.3f}")

        return {name: curves.point_outcomes(runs.load_trained(config.run_dir, name)[0], x, y, opts.eps_grid,
                                            attack=opts.attack, seeds=opts.seeds, backend=opts.backend,
                                            first_index=start, progress=reporter(name), **attack_kwargs(opts))
                if stop > start else empty for name, _ in targets}


def merge(run_dir, settings, results):
    """Writes the run's curves from shard results (in shard order), as an unsharded run writes them."""
    opts = Options(**settings["options"])
    seeds = attack_plots.count(len(opts.seeds), "seed")
    merged = {}
    for name in results[0]:
        outcomes = curves.concatenate_outcomes([result[name] for result in results])
        merged[name] = curves.curve_from_outcomes(outcomes, attack=opts.attack, backend=opts.backend,
                                                  settings=attack_kwargs(opts))
        rows = curves.summary_rows({name: merged[name]})
        print(f"attack: {name} ({_describe_attack(opts)}, {settings['points']} points, {seeds}): "
              f"{_describe_curve(rows)}")
    folder = os.path.join(run_dir, "attack")
    curves.write_curves(os.path.join(folder, "curves"), merged, dataset=settings["dataset"],
                        options=settings["options"])
    plot = os.path.join(runs.plots_dir(run_dir), "attack_curves.png")
    attack_plots.plot_robustness_curves(merged, plot, norm=opts.norm, band=opts.band,
                                        references=runs.teachers(run_dir, list(merged)),
                                        title=f"Accuracy under attack ({opts.backend} backend), {settings['dataset']}, "
                                              f"{settings['points']} test points")
    print(f"attack: {len(merged)} models -> {folder}/curves.csv, {plot}")


def merge_pending(run_dir):
    """Merges the newest complete set of shards newer than the run's curves; returns whether one was."""
    return sharded.merge_pending(os.path.join(run_dir, "attack"), "curves.json",
                                 lambda settings, results: merge(run_dir, settings, results))


def run(config):
    opts = config.options
    data = config.load_data()
    names = opts.models or tuple(runs.list_trained(config.run_dir))
    if not names:
        raise SwtfError(f"run {config.run_dir} has no trained models; train one first (--mode=train)")
    for name in names:
        if not os.path.isfile(runs.record_path(config.run_dir, name)):
            runs.load_trained(config.run_dir, name)  # raises the run's one-line "no trained model" error
    task_config = engine.portable_config(config)  # tasks re-load models and data by absolute path
    targets = [(name, records.content_digest(runs.model_path(task_config.run_dir, name))) for name in names]
    settings = {"dataset": data.name, "source": [task_config.dataset, task_config.data_dir, config.test_limit],
                "seed": config.seed, "points": len(data.y_test[:opts.num_points]), "options": _recorded(opts),
                "models": targets}
    num_shards = opts.distribute.num_shards
    sharded.run_sharded("attack", attack_shard, lambda index: [(task_config, settings, targets, num_shards, index)],
                        opts.distribute, folder=os.path.join(config.run_dir, "attack"), settings=settings,
                        merge=lambda results: merge(config.run_dir, settings, results))
