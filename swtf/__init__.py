"""swtf: shallow waters for TensorFlow. Distil, prune, attack and certify Keras networks."""

from swtf.errors import SwtfError

__all__ = ["SwtfError"]
__version__ = "0.1.0"
