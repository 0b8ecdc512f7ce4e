"""`--mode=prune`: removes the weakest conv filters of a run's student, fine-tunes it, and saves it.

Reads `<run_dir>/models/<prune_model>` (and the teacher, to distil from and to plot); writes the pruned
model as `<prune_output>`, the table of pruning steps `<run_dir>/prune/<prune_output>.{json,csv}`, the
per-layer sensitivity table, and the plots `<run_dir>/plots/prune_<prune_output>_*.png`.
"""

import dataclasses
import os

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import io, prune, runs, train
from swtf.errors import SwtfError

POLICIES = {"layer": prune.layer_fraction, "global": prune.global_fraction, "threshold": prune.l1_threshold}
SCHEDULES = ("oneshot", "polynomial", "constant")
FINETUNING = ("distill", "labels", "none")
STEP_COLUMNS = ("step", "sparsity", "filters", "params", "flops", "val_accuracy", "test_accuracy",
                "finetune_epochs")
SENSITIVITY_COLUMNS = ("layer", "filters", "fraction", "filters_removed", "val_accuracy")


@dataclasses.dataclass(frozen=True)
class Options:
    model_name: str
    teacher_name: str
    output_name: str
    policy: str
    fraction: float
    threshold: float
    schedule: str
    steps: int
    finetune: str
    distill_loss: str
    temperature: float
    alpha: float
    sensitivity: bool


def _check_name(flag, value):
    if not value or not value.replace("_", "").replace("-", "").isalnum():
        raise SwtfError(f"--{flag} must be letters, digits, '_' or '-', got {value!r}")


def options_from_flags(fv):
    """Validates the prune flags into `Options` (one-line `SwtfError` on a bad value)."""
    output = fv.prune_output or f"{fv.prune_model}_pruned"
    for flag, value in (("prune_model", fv.prune_model), ("prune_teacher", fv.prune_teacher),
                        ("prune_output", output)):
        _check_name(flag, value)
    if output == fv.prune_model:
        raise SwtfError(f"--prune_output must differ from --prune_model ({output!r}) so the student is kept")
    if fv.prune_policy == "threshold":
        if fv.prune_threshold is None or not fv.prune_threshold > 0:
            raise SwtfError(f"--prune_policy=threshold needs --prune_threshold > 0, got {fv.prune_threshold}")
        if fv.prune_schedule != "oneshot":
            raise SwtfError("--prune_policy=threshold has no sparsity to schedule; use --prune_schedule=oneshot")
    elif fv.prune_threshold is not None:
        raise SwtfError(f"--prune_threshold applies to --prune_policy=threshold, not {fv.prune_policy}")
    elif not 0.0 < fv.prune_fraction < 1.0:
        raise SwtfError(f"--prune_fraction must be in (0, 1), got {fv.prune_fraction}")
    if fv.prune_steps < 1:
        raise SwtfError(f"--prune_steps must be >= 1, got {fv.prune_steps}")
    if not fv.prune_temperature > 0:
        raise SwtfError(f"--prune_temperature must be > 0, got {fv.prune_temperature}")
    if not 0.0 <= fv.prune_alpha <= 1.0:
        raise SwtfError(f"--prune_alpha must be in [0, 1], got {fv.prune_alpha}")
    return Options(model_name=fv.prune_model, teacher_name=fv.prune_teacher, output_name=output,
                   policy=fv.prune_policy, fraction=fv.prune_fraction, threshold=fv.prune_threshold,
                   schedule=fv.prune_schedule, steps=1 if fv.prune_schedule == "oneshot" else fv.prune_steps,
                   finetune=fv.finetune, distill_loss=fv.prune_distill_loss, temperature=fv.prune_temperature,
                   alpha=fv.prune_alpha, sensitivity=fv.prune_sensitivity)


def _schedule(opts):
    if opts.schedule == "polynomial":
        return prune.polynomial(opts.fraction, opts.steps)
    return prune.constant(opts.fraction)


def _policy(opts):
    if opts.policy == "threshold":
        return lambda model, sparsity, reference: prune.l1_threshold(model, opts.threshold)
    return POLICIES[opts.policy]


def _teacher(config, opts):
    """The run's teacher, or None when the run has none and fine-tuning does not need it."""
    if opts.teacher_name in runs.list_trained(config.run_dir):
        return runs.load_trained(config.run_dir, opts.teacher_name)[0]
    if opts.finetune == "distill":
        raise SwtfError(f"--finetune=distill needs the run's teacher {opts.teacher_name!r}; train it first or use "
                        f"--finetune=labels")
    return None


def _write_sensitivity(config, opts, student, data):
    rows = prune.sensitivity(student, data.x_val, data.y_val)
    stem = os.path.join(config.run_dir, "prune", f"{opts.model_name}_sensitivity")
    io.write_json(stem + ".json", rows)
    io.write_csv(stem + ".csv", rows, SENSITIVITY_COLUMNS)
    prune.plot_sensitivity(rows, os.path.join(runs.plots_dir(config.run_dir),
                                              f"prune_{opts.model_name}_sensitivity.png"),
                           title=f"Pruning sensitivity of {opts.model_name} ({data.name}, L1 filter norm)")


def _write_steps(config, opts, steps, teacher, data):
    rows = [step.as_row() for step in steps]
    stem = os.path.join(config.run_dir, "prune", opts.output_name)
    io.write_json(stem + ".json", {"options": dataclasses.asdict(opts), "steps": rows})
    io.write_csv(stem + ".csv", rows, STEP_COLUMNS)
    series = {}
    if teacher is not None:
        series[f"teacher ({opts.teacher_name})"] = [(prune.count_params(teacher),
                                                     train.accuracy(teacher, data.x_test, data.y_test))]
    series[f"pruning steps ({opts.policy}, {opts.schedule})"] = [(s.params, s.test_accuracy) for s in steps]
    series[f"unpruned {opts.model_name}"] = [(steps[0].params, steps[0].test_accuracy)]
    prune.plot_accuracy_vs_params(series, os.path.join(runs.plots_dir(config.run_dir),
                                                       f"prune_{opts.output_name}_accuracy_vs_params.png"),
                                  title=f"Test accuracy against parameters, pruning {opts.model_name} ({data.name})")


def run(config):
    opts = config.options
    data = config.load_data()
    student, _ = runs.load_trained(config.run_dir, opts.model_name)
    teacher = _teacher(config, opts)
    teacher_logits, loss_fn = None, None
    if opts.finetune == "distill":
        teacher_logits = train.predict_logits(teacher, data.x_train)
        loss_fn = prune.distillation_loss(opts.distill_loss, opts.temperature, opts.alpha)
    if opts.sensitivity:
        _write_sensitivity(config, opts, student, data)

    steps = prune.prune_iteratively(student, data, _schedule(opts), _policy(opts), steps=opts.steps,
                                    train_options=None if opts.finetune == "none" else config.train,
                                    teacher_logits=teacher_logits, loss_fn=loss_fn, quiet=config.quiet,
                                    name=f"prune {opts.model_name}")
    if len(steps) == 1:
        raise SwtfError(f"pruning {opts.model_name} removed no filter; raise --prune_fraction or --prune_threshold")
    before, after = steps[0], steps[-1]
    metrics = {"val_accuracy": after.val_accuracy, "test_accuracy": after.test_accuracy, "dataset": data.name,
               "seed": config.seed, "training": f"pruned from {opts.model_name}", "flops": after.flops,
               "filters": after.filters, "pruning": dataclasses.asdict(opts),
               "unpruned": {"params": before.params, "flops": before.flops, "filters": before.filters,
                            "val_accuracy": before.val_accuracy, "test_accuracy": before.test_accuracy}}
    runs.save_trained(config.run_dir, opts.output_name, after.model, metrics)
    _write_steps(config, opts, steps, teacher, data)
    print(f"prune: {opts.model_name} -> {opts.output_name} ({opts.policy}, {opts.schedule}, {len(steps) - 1} "
          f"rounds, fine-tuning {opts.finetune}) on {data.summary()}")
    print(f"prune: parameters {before.params:,} -> {after.params:,} ({after.params / before.params:.1%}), "
          f"FLOPs {before.flops:,} -> {after.flops:,} ({after.flops / before.flops:.1%})")
    print(f"prune: validation accuracy {before.val_accuracy:.4f} -> {after.val_accuracy:.4f}, test accuracy "
          f"{before.test_accuracy:.4f} -> {after.test_accuracy:.4f} "
          f"-> {runs.model_path(config.run_dir, opts.output_name)}")
