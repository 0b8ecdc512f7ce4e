"""swtf: shallow waters for TensorFlow. Distil, prune, attack and certify Keras networks.

Submodules are imported on first use (`swtf.certify`, `swtf.attack`, ...), so `import swtf` stays cheap.
TensorFlow's C++ start-up lines (oneDNN, CUDA, CPU features) are hidden unless TF_CPP_MIN_LOG_LEVEL=0.
"""

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys

from swtf.errors import SwtfError

__version__ = "0.1.0"
SUBMODULES = ("attack", "certify", "checkpoints", "data", "distill", "export", "models", "prune", "report",
              "runs", "search", "study", "train")
__all__ = ["SwtfError", *SUBMODULES]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow loads; a user's own setting wins


@contextlib.contextmanager
def _native_stderr_silenced():
    """Sends whatever is written to file descriptor 2 (C++ logs included) to /dev/null while it runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        with _native_stderr_silenced():
            super().exec_module(module)
            module.config.list_physical_devices()  # the device probe's "failed call to cuInit" on CPU hosts


class _QuietTensorFlowImport:
    """Import hook: loads `tensorflow` and probes its devices with stderr silenced, once.

    TensorFlow 2.21 logs its oneDNN and CUDA lines before its logging is initialised, whatever
    TF_CPP_MIN_LOG_LEVEL says, so only this hides them from a notebook (Python errors still propagate).
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _QuietLoader(spec.loader.name, spec.loader.path)
        return spec


if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0" and "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"swtf.{name}")
    raise AttributeError(f"module 'swtf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))
