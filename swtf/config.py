"""The frozen `Config` every mode receives, validated from the flags every mode shares.

The flags themselves are defined in `swtf.cli_flags`; each mode module validates its own into its `Options`.
"""

import dataclasses
import json
import math
import os
import re

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf.data import DATASET_NAMES, TFDS_NAMES
from swtf.errors import SwtfError
from swtf.models import ARCHITECTURES
from swtf.train import TrainOptions

@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a mode needs to know, validated; `options` holds the mode's own settings."""

    mode: str
    dataset: str
    data_dir: str
    run_dir: str
    seed: int
    quiet: bool
    val_fraction: float
    train_limit: int
    test_limit: int
    model: str
    hparams: dict
    train: TrainOptions
    options: object = None

    def load_data(self):
        """The run's data set, split with the run's seed."""
        from swtf.data import load_dataset

        return load_dataset(self.dataset, self.data_dir, self.val_fraction, self.seed, self.train_limit,
                            self.test_limit)


def _default_run_dir(dataset):
    stem = os.path.splitext(os.path.basename(dataset[4:]))[0] if dataset.startswith("npz:") else dataset
    return os.path.join("runs", re.sub(r"[^A-Za-z0-9_.-]", "_", stem))


def parse_numbers(values, flag, kind=float):
    """A list flag's values as a tuple of `kind` (one-line error for a non-number or an empty list)."""
    try:
        numbers = tuple(kind(v) for v in values)
    except ValueError:
        raise SwtfError(f"--{flag} must be a comma-separated list of numbers, got {','.join(values)}") from None
    if not numbers:
        raise SwtfError(f"--{flag} needs at least one value")
    return numbers


def check_radius(value, flag, norm="linf", zero_ok=False):
    """`value` as a float if it is a perturbation radius that makes sense in pixel units: an L-inf ball of
    radius 1 around a [0, 1] image already covers the whole box (so 1e9 is a typo), an L2 radius is finite."""
    value = float(value)
    low = "[0" if zero_ok else "(0"
    high = "1] (L-inf over the [0, 1] input box)" if norm == "linf" else "inf) (L2)"
    inside = (value >= 0 if zero_ok else value > 0) and math.isfinite(value) and (norm != "linf" or value <= 1)
    if not inside:
        raise SwtfError(f"--{flag} must be a finite radius in {low}, {high}, got {value:g}")
    return value


def parse_hparams(text, flag="hparams"):
    """A JSON object of architecture hyper-parameters (one-line error otherwise)."""
    try:
        hparams = json.loads(text)
    except json.JSONDecodeError as err:
        raise SwtfError(f"--{flag} must be a JSON object such as '{{\"width\": 64}}': {err}") from None
    if not isinstance(hparams, dict):
        raise SwtfError(f"--{flag} must be a JSON object such as '{{\"width\": 64}}', got {text!r}")
    return hparams


def config_from_flags(flag_values, options=None):
    """Validates the common flags into a `Config` (raises `SwtfError` with one line on bad values)."""
    fv = flag_values
    dataset = fv.dataset
    if dataset not in ("digits",) + tuple(TFDS_NAMES) and not (dataset.startswith("npz:") and len(dataset) > 4):
        raise SwtfError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASET_NAMES)}")
    if not 0.0 < fv.val_fraction < 1.0:
        raise SwtfError(f"--val_fraction must be in (0, 1), got {fv.val_fraction}")
    for name in ("train_limit", "test_limit"):
        if getattr(fv, name) is not None and getattr(fv, name) < 1:
            raise SwtfError(f"--{name} must be a positive count, got {getattr(fv, name)}")
    if fv.model not in ARCHITECTURES:
        raise SwtfError(f"unknown --model {fv.model!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    if fv.seed < 0:
        raise SwtfError(f"--seed must be >= 0, got {fv.seed}")
    train = TrainOptions(epochs=fv.epochs, batch_size=fv.batch_size, learning_rate=fv.learning_rate,
                         patience=fv.patience, lr_schedule=fv.lr_schedule, seed=fv.seed)
    return Config(mode=fv.mode, dataset=dataset, data_dir=fv.data_dir,
                  run_dir=fv.run_dir or _default_run_dir(dataset), seed=fv.seed, quiet=fv.quiet,
                  val_fraction=fv.val_fraction, train_limit=fv.train_limit, test_limit=fv.test_limit,
                  model=fv.model, hparams=parse_hparams(fv.hparams), train=train, options=options)
