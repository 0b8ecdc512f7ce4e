"""The run directory: where every stage reads and writes its artifacts.

    <run_dir>/flags.cfg              the effective flags of the last command
    <run_dir>/models/<name>.keras    trained models
    <run_dir>/models/<name>.json     what each model is: architecture, parameters, metrics
    <run_dir>/plots/, logs/          PNG plots, TensorBoard logs
"""

import os

from swtf import checkpoints, io
from swtf.errors import SwtfError
from swtf.models import count_params

RECORD_KEYS = ("architecture", "params", "metrics")
TEACHER_ROLES = ("teacher", "robust_teacher")  # the reference models: students are compared with them


def model_path(run_dir, name):
    return os.path.join(run_dir, "models", f"{name}.keras")


def record_path(run_dir, name):
    return os.path.join(run_dir, "models", f"{name}.json")


def plots_dir(run_dir):
    return io.make_dirs(os.path.join(run_dir, "plots"))


def logs_dir(run_dir, stage):
    return os.path.join(run_dir, "logs", stage)


def save_trained(run_dir, name, model, metrics):
    """Saves `model` and its record (architecture, hparams, parameter count, `metrics`); model first."""
    checkpoints.save_model(model, model_path(run_dir, name))
    record = {
        "name": name,
        "architecture": getattr(model, "architecture", type(model).__name__),
        "hparams": getattr(model, "hparams", {}),
        "params": count_params(model),
        "metrics": dict(metrics),
    }
    io.write_json(record_path(run_dir, name), record)
    return record


def load_trained(run_dir, name):
    """Returns `(model, record)` for the model `name` of the run."""
    if not os.path.isfile(record_path(run_dir, name)):
        known = ", ".join(list_trained(run_dir)) or "none"
        raise SwtfError(f"run {run_dir} has no trained model {name!r} (it has: {known}); train it first")
    return checkpoints.load_model(model_path(run_dir, name)), read_record(run_dir, name)


def read_record(run_dir, name):
    """The record of model `name`; a file that is not a complete record is a one-line error naming it."""
    path = record_path(run_dir, name)
    record = io.read_json(path)
    if not (isinstance(record, dict) and all(key in record for key in RECORD_KEYS)
            and isinstance(record["metrics"], dict)):
        raise SwtfError(f"{path} is not a complete model record (it needs {', '.join(RECORD_KEYS)}); retrain "
                        f"{name!r} or restore the file")
    return record


def list_trained(run_dir):
    folder = os.path.join(run_dir, "models")
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json") and not io.is_temporary(f)
                  and os.path.isfile(os.path.join(folder, f[:-5] + ".keras")))


def teachers(run_dir, names):
    """Those of `names` with a record giving them a teacher's role (the plots' reference models)."""
    return [n for n in names if os.path.isfile(record_path(run_dir, n))
            and read_record(run_dir, n)["metrics"].get("role") in TEACHER_ROLES]
