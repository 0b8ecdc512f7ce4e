"""The CLI's modes: one module each, with its `Options` and its `run(config)` (flags: `swtf.cli_flags`).

A mode whose module is not in this package yet is reported as not built (exit 2), never run half-way.
"""

import importlib
import os

from swtf.errors import SwtfError

MODE_MODULES = {mode: f"swtf.modes.{mode}" for mode in (
    "study", "train", "distill", "prune", "attack", "certify", "search", "report", "export", "verify")}


def _always(options):
    return True


# Modes that read a run's artifacts, and when (given their options): they need an existing run directory.
READS_RUN = {"attack": _always, "prune": _always, "report": _always, "export": _always,
             "certify": lambda options: not options.model_path,
             "distill": lambda options: not options.teacher_path,
             "search": lambda options: not options.teacher_path}


def import_available():
    """Imports every built mode module (so that all flags are defined); returns {mode: module}."""
    available = {}
    for mode, module_name in MODE_MODULES.items():
        try:
            available[mode] = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
    return available


def module_for(mode, available):
    if mode not in available:
        built = ", ".join(sorted(available)) or "none"
        raise SwtfError(f"--mode={mode} is not built yet in this version of swtf (built modes: {built})")
    return available[mode]


def check_run_exists(config):
    """Fails when a mode that reads the run finds no run directory, before anything (the effective flags
    file) would create it empty and the mode then report a confusing "no trained model"."""
    if config.mode in READS_RUN and READS_RUN[config.mode](config.options) and not os.path.isdir(config.run_dir):
        raise SwtfError(f"run directory {config.run_dir} does not exist; train a model first or pass the right "
                        f"--run_dir")
