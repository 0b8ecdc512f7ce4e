"""swtf: shallow waters for TensorFlow. Distil, prune, attack and certify Keras networks.

Submodules are imported on first use (`swtf.certify`, `swtf.attack`, ...), so `import swtf` stays cheap.
"""

import importlib

from swtf.errors import SwtfError

__version__ = "0.1.0"
SUBMODULES = ("attack", "certify", "checkpoints", "data", "distill", "export", "models", "prune", "report",
              "runs", "search", "study", "train")
__all__ = ["SwtfError", *SUBMODULES]


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"swtf.{name}")
    raise AttributeError(f"module 'swtf' has no attribute {name!r}")
