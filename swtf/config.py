"""The frozen `Config` every mode receives, validated from the flags every mode shares.

The flags themselves are defined in `swtf.cli_flags`; each mode module validates its own into its `Options`.
"""

import dataclasses
import os
import re

from swtf import cli_flags
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


def config_from_flags(flag_values, options=None):
    """Validates the common flags into a `Config` (raises `SwtfError` with one line on bad values)."""
    fv = flag_values
    cli_flags.check_common(fv)
    train = TrainOptions(epochs=fv.epochs, batch_size=fv.batch_size, learning_rate=fv.learning_rate,
                         patience=fv.patience, lr_schedule=fv.lr_schedule, seed=fv.seed)
    return Config(mode=fv.mode, dataset=fv.dataset, data_dir=fv.data_dir,
                  run_dir=fv.run_dir or _default_run_dir(fv.dataset), seed=fv.seed, quiet=fv.quiet,
                  val_fraction=fv.val_fraction, train_limit=fv.train_limit, test_limit=fv.test_limit,
                  model=fv.model, hparams=cli_flags.parse_hparams(fv.hparams), train=train, options=options)
