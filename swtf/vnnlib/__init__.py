"""VNN-LIB properties and their verification on ONNX networks (VNN-COMP style).

`read_vnnlib` / `parse_vnnlib` give a `Property`; `verify_property` decides it (`unsat`, `sat` with a
counterexample checked on onnxruntime, `unknown` or `timeout`); `run_instances` runs an instances CSV.
"""

from swtf.vnnlib.parser import parse_vnnlib, read_vnnlib
from swtf.vnnlib.property import Disjunct, Property

__all__ = ["Disjunct", "Property", "parse_vnnlib", "read_vnnlib"]
