"""`--mode=certify`: certified radii and certified accuracy at `--eps` of a run's models.

Certifies every model named by `--certify_models` (default: all of the run's models; those with a layer
the certifier refuses are reported as not certifiable and skipped), or the single model at
`--model_path`, on the first `--num_points` test points (the same points for every model). Writes
`<run_dir>/certify/<model>.{csv,json}` (per point: index, label, predicted, certified radius, attack
radius (`radius_bracket`), certified at eps, seconds, PGD and exact verdicts), `<run_dir>/certify/summary.json`,
and the plots `<run_dir>/plots/certify_radii.png` and `certify_accuracy.png`. `--method=bab` verifies
completely (branch and bound, `--timeout_per_point` seconds per point and radius tried).
"""

import dataclasses
import importlib.util
import math
import os

import numpy as np

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import checkpoints, io, runs
from swtf.certify import as_network
from swtf.certify import plots as certify_plots
from swtf.certify.radius import check_bab_options
from swtf.certify.results import COLUMNS, certify_points, summarise_points
from swtf.distribute import engine, records, sharded, shards
from swtf.distribute import flags as distribute_flags
from swtf.errors import SwtfError


@dataclasses.dataclass(frozen=True)
class Options:
    models: tuple
    model_path: str
    eps: float
    norm: str
    method: str
    num_points: int
    max_radius: float
    exact_time_limit: float
    timeout_per_point: float
    distribute: distribute_flags.DistributeOptions = distribute_flags.DistributeOptions()


def options_from_flags(fv):
    """Validates the certify flags into `Options` (one-line `SwtfError` on a bad value)."""
    from swtf.cli_flags import check_radius

    check_radius(fv.eps, "eps", fv.norm)
    if fv.num_points < 1:
        raise SwtfError(f"--num_points must be >= 1, got {fv.num_points}")
    if fv.max_radius is not None:
        check_radius(fv.max_radius, "max_radius", fv.norm)
    if not (math.isfinite(fv.exact_time_limit) and fv.exact_time_limit >= 0):
        raise SwtfError(f"--exact_time_limit must be >= 0 seconds, got {fv.exact_time_limit}")
    if fv.exact_time_limit > 0 and fv.norm != "linf":
        raise SwtfError("--exact_time_limit needs --norm=linf: the exact L2 problem is a mixed-integer quadratic "
                        "program, which the MILP solver cannot do")
    if fv.method == "bab":
        check_bab_options(fv.norm, "float64", fv.timeout_per_point)
    if fv.model_path and fv.certify_models:
        raise SwtfError("pass either --model_path or --certify_models, not both")
    for name in fv.certify_models or ():
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise SwtfError(f"--certify_models names must be letters, digits, '_' or '-', got {name!r}")
    return Options(models=tuple(fv.certify_models or ()), model_path=fv.model_path, eps=float(fv.eps),
                   norm=fv.norm, method=fv.method, num_points=fv.num_points, max_radius=fv.max_radius,
                   exact_time_limit=float(fv.exact_time_limit), timeout_per_point=float(fv.timeout_per_point),
                   distribute=distribute_flags.options_from_flags(fv))


def _load_path(path):
    """(name, model): a .keras file loaded with Keras, a SavedModel folder left as a path for the certifier."""
    if path.endswith(".keras"):
        return os.path.basename(path)[:-len(".keras")], checkpoints.load_model(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        if importlib.util.find_spec("swtf.certify.savedmodel_frontend") is None:
            raise SwtfError("this swtf cannot read SavedModels into the certifier yet; pass the .keras file")
        return os.path.basename(os.path.normpath(path)), path
    raise SwtfError(f"--model_path {path} is neither a .keras file nor a SavedModel folder (with saved_model.pb)")


def _targets(config):
    """[(name, path)] of the models to certify: `--model_path`, or the run's models by their files."""
    opts = config.options
    if opts.model_path:
        path = os.path.abspath(opts.model_path)
        name = os.path.basename(os.path.normpath(path))
        return [(name[:-len(".keras")] if name.endswith(".keras") else name, path)]
    names = opts.models or tuple(runs.list_trained(config.run_dir))
    if not names:
        raise SwtfError(f"run {config.run_dir} has no trained models; train one first or pass --model_path")
    for name in names:
        if not os.path.isfile(runs.record_path(config.run_dir, name)):
            runs.load_trained(config.run_dir, name)  # raises the run's one-line "no trained model" error
    return [(name, os.path.abspath(runs.model_path(config.run_dir, name))) for name in names]


def _settings(config, data, targets):
    """What a shard's results depend on; shards are merged only when theirs are equal."""
    opts = config.options
    num_points = len(data.y_test[:opts.num_points])
    return {"dataset": data.name, "source": [config.dataset, config.data_dir, config.test_limit], "seed": config.seed,
            "eps": opts.eps, "norm": opts.norm, "method": opts.method, "points": num_points,
            "max_radius": opts.max_radius or (1.0 if opts.norm == "linf" else math.sqrt(math.prod(data.input_shape))),
            "exact_time_limit": opts.exact_time_limit,
            "timeout_per_point": opts.timeout_per_point if opts.method == "bab" else None,
            "models": [[name, records.content_digest(path)] for name, path in targets]}


def certify_shard(config, settings, targets, num_shards, index):
    """Certifies every model of `targets` (re-loaded from their paths) on shard `index`'s points.

    Returns {"models": {name: {"rows", "seconds", "certify_seconds"}}, "not_certifiable": {name: reason},
    "not_loaded": {name: error}}: a model file that cannot be loaded does not stop the others.
    """
    from swtf import progress

    opts = config.options
    data = config.load_data()
    start, stop = shards.point_range(settings["points"], num_shards, index)
    x, y = data.x_test[start:stop].astype(np.float64), data.y_test[start:stop]
    result = {"models": {}, "not_certifiable": {}, "not_loaded": {}}
    with progress.Progress("certify", len(targets), unit="model", quiet=config.quiet) as bar:
        for name, path in targets:
            try:
                model = _load_path(path)[1]
            except SwtfError as err:
                result["not_loaded"][name] = str(err)
                bar.step(name, "cannot load")
                continue
            try:
                as_network(model)
            except SwtfError as err:
                result["not_certifiable"][name] = f"not certifiable: {err}"
                bar.step(name, "not certifiable")
                continue
            rows, summary = [], {"seconds": 0.0, "certify_seconds": 0.0}
            if stop > start:
                rows, summary = certify_points(model, x, y, name=name, eps=opts.eps, norm=opts.norm,
                                               method=opts.method, max_radius=settings["max_radius"],
                                               exact_time_limit=opts.exact_time_limit, seed=config.seed,
                                               first_index=start, timeout_per_point=opts.timeout_per_point)
            result["models"][name] = {"rows": rows, "seconds": summary["seconds"],
                                      "certify_seconds": summary["certify_seconds"]}
            bar.step(name, f"certified accuracy {summary['certified_accuracy']:.3f}" if rows else "no points")
    return result


def _write_plots(run_dir, settings, results):
    """`results`: {model name: (radii, correctly classified)}."""
    folder = runs.plots_dir(run_dir)
    title = f"{settings['dataset']}, {settings['method']}, {settings['points']} test points"
    references = runs.teachers(run_dir, list(results))
    certify_plots.plot_sorted_radii({name: radii for name, (radii, _) in results.items()}, settings["norm"],
                                    os.path.join(folder, "certify_radii.png"), title=f"Certified radii ({title})",
                                    references=references)
    certify_plots.plot_certified_accuracy(results, settings["norm"], os.path.join(folder, "certify_accuracy.png"),
                                          title=f"Certified accuracy against eps ({title})", references=references)


def _describe(summary):
    pgd = "n/a" if summary["pgd_accuracy"] is None else f"{summary['pgd_accuracy']:.3f}"
    exact = f", exact MILP {summary['exact']}" if "exact" in summary else ""
    return (f"clean {summary['clean_accuracy']:.3f}, certified {summary['certified_accuracy']:.3f}, PGD {pgd}, "
            f"radius mean {summary['mean_radius']:.4f} median {summary['median_radius']:.4f} (attack radius median "
            f"{summary['median_attack_radius']:.4f}){exact}, "
            f"{summary['seconds']:.1f} s")


def merge(run_dir, settings, results):
    """Writes the run's certify outputs from shard results (in shard order): rows concatenated, summaries
    recomputed from them, exactly as an unsharded run writes them."""
    folder = os.path.join(run_dir, "certify")
    summaries, curves = {}, {}
    refused = results[0]["not_certifiable"]
    not_loaded = results[0].get("not_loaded", {})  # absent from the shard files of older versions
    for name in refused:
        print(f"certify: {name}: {refused[name]}")
    if not results[0]["models"]:
        reasons = [*not_loaded.values(), *(f"{name} is {reason}" for name, reason in refused.items())]
        raise SwtfError(f"no model was certified: {'; '.join(reasons)}")
    for name in results[0]["models"]:
        parts = [result["models"][name] for result in results]
        rows = [row for part in parts for row in part["rows"]]
        summary = summarise_points(rows, name=name, method=settings["method"], norm=settings["norm"],
                                   eps=settings["eps"], seconds=sum(part["seconds"] for part in parts),
                                   certify_seconds=sum(part["certify_seconds"] for part in parts),
                                   exact_time_limit=settings["exact_time_limit"])
        io.write_csv(os.path.join(folder, f"{name}.csv"), rows, COLUMNS)
        io.write_json(os.path.join(folder, f"{name}.json"), {"summary": summary, "points": rows})
        summaries[name] = summary
        curves[name] = ([row["radius"] for row in rows], [row["predicted"] == row["label"] for row in rows])
        print(f"certify: {name} ({settings['method']}, {settings['norm']} eps {settings['eps']:g}, "
              f"{len(rows)} points): " + _describe(summary))
    io.write_json(os.path.join(folder, "summary.json"),
                  {"dataset": settings["dataset"], "eps": settings["eps"], "norm": settings["norm"],
                   "method": settings["method"], "points": settings["points"], "max_radius": settings["max_radius"],
                   "models": summaries, "not_certifiable": refused, "not_loaded": not_loaded,
                   "shards": len(results)})
    _write_plots(run_dir, settings, curves)
    print(f"certify: {len(summaries)} models certified, {len(refused)} not certifiable -> {folder}")
    if not_loaded:  # the finished models' results are written first
        raise SwtfError(f"{next(iter(not_loaded.values()))} (the other models' results are in {folder})")


def merge_pending(run_dir):
    """Merges every complete set of shards newer than the run's certify summary; returns how many."""
    return sharded.merge_pending(os.path.join(run_dir, "certify"), "summary.json",
                                 lambda settings, results: merge(run_dir, settings, results))


def run(config):
    opts = config.options
    data = config.load_data()
    targets = _targets(config)
    task_config = engine.portable_config(config)  # tasks re-load models and data by absolute path
    settings = _settings(task_config, data, targets)
    num_shards = opts.distribute.num_shards
    sharded.run_sharded("certify", certify_shard, lambda index: [(task_config, settings, targets, num_shards, index)],
                        opts.distribute, folder=os.path.join(config.run_dir, "certify"), settings=settings,
                        merge=lambda results: merge(config.run_dir, settings, results))
