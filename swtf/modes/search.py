"""`--mode=search`: keras-tuner search over distilled students; the best is saved as "search_best".

The students are trained by the distillation flags of `--mode=distill` (`--distill_method`, `--alpha`,
`--distill_targets`, `--transfer_data`, `--teacher_path`; several `--temperatures` are searched as a
hyper-parameter). The search folder is `<run_dir>/search/<tuner>` (resumed when it exists), the HParams
logs `<run_dir>/logs/search`, and the trial table `<run_dir>/search/<tuner>_trials.csv`. With keras-tuner's
KERASTUNER_* variables set, the process is the chief or a worker of a distributed search (see
`swtf.search.tuning`); only the chief (or a lone process) saves the best student.
"""

import dataclasses
import json
import os

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import io, runs, train
from swtf.distill import trainer, transfer
from swtf.errors import SwtfError
from swtf.modes import distill as distill_mode
from swtf.search import hypermodel, space, tuning


BEST_NAME = "search_best"


@dataclasses.dataclass(frozen=True)
class Options:
    tuner: str
    max_trials: int
    max_params: int
    families: tuple
    overwrite: bool
    spec: trainer.DistillSpec
    temperatures: tuple
    teacher_path: str
    transfer: tuple


def options_from_flags(fv):
    if fv.max_trials < 1:
        raise SwtfError(f"--max_trials must be >= 1, got {fv.max_trials}")
    if fv.max_params is not None and fv.max_params < 1:
        raise SwtfError(f"--max_params must be a positive parameter count, got {fv.max_params}")
    spec, temperatures = distill_mode.spec_from_flags(fv)
    return Options(tuner=fv.tuner, max_trials=fv.max_trials, max_params=fv.max_params,
                   families=space.check_families(fv.search_families or []), overwrite=fv.search_overwrite,
                   spec=spec, temperatures=temperatures, teacher_path=fv.teacher_path,
                   transfer=transfer.parse_transfer_source(fv.transfer_data))


def run(config):
    opts = config.options
    role = tuning.distributed_role()
    data = config.load_data()
    teacher = distill_mode.load_teacher(config.run_dir, opts.teacher_path, data)
    transfer_x = transfer.load_transfer_images(opts.transfer, data, opts.spec.augmentation, config.seed)
    model = hypermodel.DistillationHyperModel(
        data, trainer.teacher_targets(teacher, data, transfer_x), opts.spec, config.train, opts.families,
        temperatures=opts.temperatures, max_params=opts.max_params,
        teacher=teacher if opts.spec.targets == "online" else None, quiet=config.quiet)
    tuner = tuning.make_tuner(opts.tuner, model, directory=os.path.join(config.run_dir, "search"),
                              hparams_log_dir=runs.logs_dir(config.run_dir, "search"), project_name=opts.tuner,
                              max_trials=opts.max_trials, max_epochs=config.train.epochs, seed=config.seed,
                              overwrite=opts.overwrite, quiet=config.quiet)
    tuner.search(verbose=0)
    if role == "worker":
        print(f"search: worker {os.environ['KERASTUNER_TUNER_ID']} finished its trials")
        return
    rows = tuning.trial_rows(tuner)
    table = os.path.join(config.run_dir, "search", f"{opts.tuner}_trials")
    io.write_json(table + ".json", rows)
    io.write_csv(table + ".csv", [dict(r, hyperparameters=json.dumps(r["hyperparameters"], sort_keys=True))
                                  for r in rows],
                 ["trial_id", "status", "val_accuracy", "params", "teacher_agreement", "hyperparameters"])
    student, trial = tuning.best_student(tuner)
    metrics = {"val_accuracy": train.accuracy(student, data.x_val, data.y_val),
               "test_accuracy": train.accuracy(student, data.x_test, data.y_test),
               "teacher_agreement": trial.metrics.get_best_value("teacher_agreement"),
               "trial_id": trial.trial_id, "hyperparameters": dict(trial.hyperparameters.values),
               "tuner": opts.tuner, "trials": len(rows), "max_params": opts.max_params,
               "method": opts.spec.method, "dataset": data.name, "seed": config.seed, "training": "search"}
    record = runs.save_trained(config.run_dir, BEST_NAME, student, metrics)
    print(f"search: {len(rows)} trials ({opts.tuner}); best trial {trial.trial_id}: {student.architecture} "
          f"{student.hparams}, {record['params']:,} parameters, validation {metrics['val_accuracy']:.4f}, test "
          f"{metrics['test_accuracy']:.4f} -> {runs.model_path(config.run_dir, BEST_NAME)}")
