"""Running a keras-tuner search over distilled students: tuner choice, HParams logs, the best student.

Tuners: "bayesian" (`keras_tuner.BayesianOptimization`, `max_trials` students) and "hyperband"
(`keras_tuner.Hyperband`: its number of trials follows from `max_epochs` and the reduction factor 3;
`max_trials` does not apply). The objective is validation accuracy (maximised). Both tuners log every trial
for TensorBoard's HParams dashboard (`hparams_logging`, one folder per trial under `hparams_log_dir`).

Distributed search (keras-tuner's chief/worker mode, gRPC): start the same command once per process with
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` naming the chief's address, and `KERASTUNER_TUNER_ID`
set to "chief" for the one process that hosts the oracle and to a distinct name ("tuner0", "tuner1", ...)
for each worker. The chief runs no trial: it serves the oracle until the workers have finished. All
processes must share the search folder (checkpoints are written by the workers, read by the chief).
"""

import os

import keras_tuner

from swtf import progress
from swtf.errors import SwtfError
from swtf.search.hparams_logging import TrialHParamsLogger
from swtf.search.hypermodel import OBJECTIVE

TUNERS = ("bayesian", "hyperband")
HYPERBAND_FACTOR = 3


def distributed_role():
    """"chief", "worker", or None when no keras-tuner distribution variables are set."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise SwtfError(f"KERASTUNER_ORACLE_IP is set but {', '.join(missing)} is not; set all three keras-tuner "
                        f"variables or none")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


class _HParamsLogging:
    """Tuner mixin: gives each trial's training a `TrialHParamsLogger` in `<hparams_log_dir>/<trial_id>`."""

    def __init__(self, *args, hparams_log_dir, **kwargs):
        self.hparams_log_dir = hparams_log_dir
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        logger = TrialHParamsLogger(os.path.join(self.hparams_log_dir, trial.trial_id),
                                    trial.hyperparameters.values, trial.trial_id)
        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [logger]
        return super().run_trial(trial, *args, **kwargs)


class _TrialProgress:
    """Tuner mixin: `search` reports each finished trial and its score through `swtf.progress`."""

    def __init__(self, *args, quiet=True, **kwargs):
        self.quiet = quiet
        super().__init__(*args, **kwargs)

    def search(self, *args, **kwargs):
        # Trials left to run, None where unknown (Hyperband; a distributed worker, which shares them).
        left = getattr(self.oracle, "remaining_trials", lambda: None)()
        with progress.Progress("search", left, unit="trial", quiet=self.quiet) as self.trial_progress:
            return super().search(*args, **kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        score = self.oracle.get_trial(trial.trial_id).score
        self.trial_progress.step(f"trial {trial.trial_id}", "no score" if score is None else f"{OBJECTIVE} {score:.4f}")


class BayesianSearch(_TrialProgress, _HParamsLogging, keras_tuner.BayesianOptimization):
    """Gaussian-process Bayesian optimisation over students, with HParams logs."""


class HyperbandSearch(_TrialProgress, _HParamsLogging, keras_tuner.Hyperband):
    """Hyperband over students (successive halving of epochs), with HParams logs."""


def make_tuner(kind, hypermodel, *, directory, hparams_log_dir, project_name="search", max_trials=10,
               max_epochs=10, seed=0, overwrite=False, quiet=True):
    """A tuner maximising validation accuracy; an existing search in `directory` resumes unless `overwrite`.

    `quiet=False` reports each finished trial (a bar on a terminal, one line otherwise).
    """
    common = dict(hypermodel=hypermodel, objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
                  directory=directory, project_name=project_name, seed=seed, overwrite=overwrite,
                  hparams_log_dir=hparams_log_dir, quiet=quiet)
    if kind == "bayesian":
        return BayesianSearch(max_trials=max_trials, **common)
    if kind == "hyperband":
        return HyperbandSearch(max_epochs=max_epochs, factor=HYPERBAND_FACTOR, **common)
    raise SwtfError(f"unknown tuner {kind!r}; choose one of {', '.join(TUNERS)}")


def trial_rows(tuner):
    """One row per finished trial: id, status, score, parameters, teacher agreement and hyper-parameters."""
    rows = []
    for trial in tuner.oracle.trials.values():
        metrics = {name: trial.metrics.get_best_value(name) for name in ("params", "teacher_agreement")
                   if trial.metrics.exists(name)}
        rows.append({"trial_id": trial.trial_id, "status": trial.status, "val_accuracy": trial.score,
                     **metrics, "hyperparameters": dict(trial.hyperparameters.values)})
    return sorted(rows, key=lambda r: r["trial_id"])


def best_student(tuner):
    """The best trial's student with its best-epoch weights, and the trial; refuses an all-zero search."""
    trials = tuner.oracle.get_best_trials(1)
    if not trials or not trials[0].score:
        raise SwtfError("the search found no trained student (every trial failed or was over --max_params); "
                        "raise --max_params or --max_trials")
    return tuner.load_model(trials[0]), trials[0]
