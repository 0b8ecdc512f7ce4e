"""`--mode=distill`: trains a student from the run's teacher, ranges temperatures, or runs the factors study.

Without `--sweep`: one student (`--model`, `--hparams`) distilled with `--distill_method`; several
`--temperatures` train one student each and keep the validation-best. With `--sweep`: every student of the
sweep, by every `--sweep_methods` method and temperature and every `--seeds` seed; writes the table under
`<run_dir>/distill/` and the plots under `<run_dir>/plots/`.
"""

import dataclasses
import os

from swtf import cli_flags
from swtf import checkpoints, io, models, runs, train
from swtf.distill import augment, plots, study, sweep, temperature, trainer, transfer
from swtf.distribute import engine, records, sharded, shards
from swtf.distribute import flags as distribute_flags
from swtf.errors import SwtfError


@dataclasses.dataclass(frozen=True)
class Options:
    spec: trainer.DistillSpec
    temperatures: tuple
    teacher_path: str
    transfer: tuple  # parsed --transfer_data, or None
    students: tuple  # parsed --sweep, or empty
    sweep_methods: tuple
    seeds: tuple
    student_name: str
    distribute: distribute_flags.DistributeOptions = distribute_flags.DistributeOptions()


def spec_from_flags(fv):
    """The `DistillSpec` of the distillation flags (first temperature), shared with `--mode=search`."""
    temperatures = cli_flags.parse_numbers(fv.temperatures or [], "temperatures", float)
    flip = {"auto": augment.default_augmentation(fv.dataset).horizontal_flip, "on": True, "off": False}
    augmentation = augment.Augmentation(max_shift=fv.augment_shift, horizontal_flip=flip[fv.augment_flip])
    return trainer.DistillSpec(method=fv.distill_method, temperature=temperatures[0], alpha=fv.alpha,
                               targets=fv.distill_targets, augmentation=augmentation), temperatures


def options_from_flags(fv):
    spec, temperatures = spec_from_flags(fv)
    for t in temperatures:
        dataclasses.replace(spec, temperature=t)  # validates each temperature
    seeds = cli_flags.parse_numbers(fv.seeds, "seeds", int) if fv.seeds else (fv.seed,)
    if min(seeds) < 0:
        raise SwtfError(f"--seeds must be >= 0, got {fv.seeds}")
    if not fv.student_name or not fv.student_name.replace("_", "").replace("-", "").isalnum():
        raise SwtfError(f"--student_name must be letters, digits, '_' or '-', got {fv.student_name!r}")
    students = tuple(sweep.parse_sweep(fv.sweep)) if fv.sweep else ()
    sweep_methods = tuple(fv.sweep_methods or ())
    if students:
        sweep.expand_sweep(students, sweep_methods, temperatures, seeds)  # validates methods and temperatures
    return Options(spec=spec, temperatures=temperatures, teacher_path=fv.teacher_path,
                   transfer=transfer.parse_transfer_source(fv.transfer_data), students=students,
                   sweep_methods=sweep_methods, seeds=seeds, student_name=fv.student_name,
                   distribute=distribute_flags.options_from_flags(fv))


def load_teacher(run_dir, teacher_path, data):
    """The `teacher_path` model, or the run's "teacher", checked against the data's input shape."""
    teacher = checkpoints.load_model(teacher_path) if teacher_path else runs.load_trained(run_dir, "teacher")[0]
    shape = tuple(getattr(teacher, "input_shape_", ()))
    if shape != tuple(data.input_shape):
        raise SwtfError(f"the teacher takes inputs {shape} but {data.name} images are {data.input_shape}; "
                        f"distil from a teacher trained on this data set")
    return teacher


def _distil_one(config, data, targets, teacher):
    opts = config.options

    def build_student():
        return models.build(config.model, data.input_shape, data.num_classes, seed=config.seed, **config.hparams)

    if opts.spec.method in trainer.TEMPERATURE_METHODS and len(opts.temperatures) > 1:
        rows, best, student = temperature.range_temperatures(build_student, data, targets, opts.spec,
                                                             opts.temperatures, config.train, teacher=teacher,
                                                             quiet=config.quiet)
        folder = os.path.join(config.run_dir, "distill")
        header = ["temperature", "val_accuracy", "test_accuracy", "teacher_agreement", "best_epoch"]
        io.write_csv(os.path.join(folder, f"{opts.student_name}_temperatures.csv"), rows, header)
        io.write_json(os.path.join(folder, f"{opts.student_name}_temperatures.json"), rows)
        for row in rows:
            print(f"distill: T={row['temperature']:g} validation {row['val_accuracy']:.4f} test "
                  f"{row['test_accuracy']:.4f}{'  <- chosen on validation' if row is rows[best] else ''}")
        return student, rows[best]
    student = build_student()
    metrics = trainer.distill(student, data, targets, opts.spec, config.train, teacher=teacher,
                              name=opts.student_name, log_dir=runs.logs_dir(config.run_dir, opts.student_name),
                              quiet=config.quiet)
    uses_temperature = opts.spec.method in trainer.TEMPERATURE_METHODS
    return student, {"temperature": opts.spec.temperature if uses_temperature else None, **metrics}


_CONTEXTS = {}  # repr(config) -> (StudyContext, teacher test accuracy): built once per process and sweep


def _teacher_and_targets(config):
    """(data, teacher, teacher targets, transfer images) of the run's distillation settings."""
    opts = config.options
    data = config.load_data()
    teacher = load_teacher(config.run_dir, opts.teacher_path, data)
    transfer_x = transfer.load_transfer_images(opts.transfer, data, opts.spec.augmentation, config.seed)
    return data, teacher, trainer.teacher_targets(teacher, data, transfer_x), transfer_x


def study_context(config):
    """The `StudyContext` every member of the sweep shares, and the teacher's test accuracy (cached)."""
    key = repr(config)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        data, teacher, targets, _ = _teacher_and_targets(config)
        online_teacher = teacher if config.options.spec.targets == "online" else None
        _CONTEXTS[key] = (study.StudyContext(data, targets, config.options.spec, config.train, teacher=online_teacher,
                                             quiet=config.quiet), train.accuracy(teacher, data.x_test, data.y_test))
    return _CONTEXTS[key]


def _members(opts):
    return sweep.expand_sweep(opts.students, opts.sweep_methods, opts.temperatures, opts.seeds)


def sweep_member(config, position):
    """Trains member `position` of the expanded sweep (data and teacher re-loaded from the run) -> its row."""
    members = _members(config.options)
    member = members[position]
    row = study.run_member(member, study_context(config)[0])
    print(f"distill: [{position + 1}/{len(members)}] {member.student} {member.method}"
          f"{'' if member.temperature is None else f' T={member.temperature:g}'} seed {member.seed}: "
          f"validation {row['val_accuracy']:.4f} test {row['test_accuracy']:.4f}")
    return row


def merge(run_dir, settings, results):
    """Writes the study's tables and plots from shard results (rows of members i, i+K, ... per shard)."""
    rows = study.mark_selected(shards.interleave(results))
    summary = study.summarise([r for r in rows if r["selected"]])
    temperature_rows = [r for r in rows if r["temperature"] is not None]
    by_temperature = (study.summarise(temperature_rows, by=("student", "method", "temperature"))
                      if temperature_rows else [])
    folder = os.path.join(run_dir, "distill")
    for name, table, header in (("study_rows", rows, study.ROW_FIELDS),
                                ("study_summary", summary, study.SUMMARY_FIELDS),
                                ("study_temperatures", by_temperature, ("temperature",) + study.SUMMARY_FIELDS)):
        io.write_csv(os.path.join(folder, f"{name}.csv"), table, header)
        io.write_json(os.path.join(folder, f"{name}.json"), table)
    written = [plots.accuracy_against_params(summary, os.path.join(runs.plots_dir(run_dir),
                                                                   "distill_accuracy_vs_params.png"),
                                             teacher_accuracy=settings["teacher_test_accuracy"])]
    if by_temperature:
        written.append(plots.accuracy_against_temperature(
            by_temperature, os.path.join(runs.plots_dir(run_dir), "distill_accuracy_vs_temperature.png")))
    for entry in summary:
        print(f"distill: {entry['student']:<32} {entry['method']:<12} {entry['params']:>9,} params  test "
              f"{entry['test_accuracy_mean']:.4f} ± {entry['test_accuracy_std']:.4f} over {entry['seeds']} seeds")
    print(f"distill: table -> {folder}/study_summary.csv; plots -> {', '.join(written)}")


def merge_pending(run_dir):
    """Merges the newest complete set of sweep shards newer than the study's rows; returns whether one was."""
    return sharded.merge_pending(os.path.join(run_dir, "distill"), "study_rows.json",
                                 lambda settings, results: merge(run_dir, settings, results))


def _run_study(config):
    """The factors study: members dealt round-robin to shards, each member one unit of work (a Ray task)."""
    opts = config.options
    teacher_path = opts.teacher_path or runs.model_path(config.run_dir, "teacher")
    task_config = engine.portable_config(dataclasses.replace(
        config, options=dataclasses.replace(opts, teacher_path=os.path.abspath(teacher_path))))
    context, teacher_test_accuracy = study_context(task_config)
    print(f"distill: teacher test accuracy {teacher_test_accuracy:.4f} on {context.data.summary()}")
    params = study.check_students(opts.students, context.data)
    members = _members(opts)
    print(f"distill: factors study of {len(params)} students, {len(members)} trainings")
    recorded = dataclasses.replace(task_config.options, distribute=distribute_flags.DistributeOptions())
    settings = {"config": repr(dataclasses.replace(task_config, options=recorded, quiet=True)),
                "teacher": records.content_digest(teacher_path), "teacher_test_accuracy": teacher_test_accuracy,
                "members": len(members)}
    num_shards = opts.distribute.num_shards

    def units(index):
        return [(task_config, position) for position in shards.strided(range(len(members)), num_shards, index)]

    sharded.run_sharded("distill", sweep_member, units, opts.distribute, folder=os.path.join(config.run_dir, "distill"),
                        settings=settings, merge=lambda results: merge(config.run_dir, settings, results), join=list)


def run(config):
    opts = config.options
    if opts.students:
        _run_study(config)
        return
    data, teacher, targets, transfer_x = _teacher_and_targets(config)
    teacher_test_accuracy = train.accuracy(teacher, data.x_test, data.y_test)
    extra = f", {len(transfer_x)} transfer examples" if transfer_x is not None else ""
    print(f"distill: teacher test accuracy {teacher_test_accuracy:.4f} on {data.summary()}{extra}")
    online_teacher = teacher if opts.spec.targets == "online" else None
    student, metrics = _distil_one(config, data, targets, online_teacher)
    metrics.update(method=opts.spec.method, alpha=opts.spec.alpha, targets=opts.spec.targets,
                   teacher=opts.teacher_path or "teacher", teacher_test_accuracy=teacher_test_accuracy,
                   transfer_examples=0 if transfer_x is None else int(len(transfer_x)), dataset=data.name,
                   seed=config.seed, training="distill")
    record = runs.save_trained(config.run_dir, opts.student_name, student, metrics)
    temperature_text = "" if metrics["temperature"] is None else f", T={metrics['temperature']:g}"
    print(f"distill: {opts.student_name} ({config.model}, {record['params']:,} parameters, {opts.spec.method}"
          f"{temperature_text}): validation {metrics['val_accuracy']:.4f}, test "
          f"{metrics['test_accuracy']:.4f}, teacher agreement {metrics['teacher_agreement']:.4f} "
          f"(teacher test {teacher_test_accuracy:.4f}) -> {runs.model_path(config.run_dir, opts.student_name)}")
