"""The CLI's modes: one module each, with its `Options` and its `run(config)` (flags: `swtf.cli_flags`).

A mode whose module is not in this package yet is reported as not built (exit 2), never run half-way.
"""

import importlib

from swtf.errors import SwtfError

MODE_MODULES = {mode: f"swtf.modes.{mode}" for mode in (
    "study", "train", "distill", "prune", "attack", "certify", "search", "report", "export", "verify")}


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
