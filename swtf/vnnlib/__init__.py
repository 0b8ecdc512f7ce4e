"""VNN-LIB properties and their verification on ONNX networks (VNN-COMP style).

`read_vnnlib` / `parse_vnnlib` give a `Property`; `verify_property` decides it (`unsat`, `sat` with a
counterexample checked on onnxruntime, `unknown` or `timeout`); `run_instances` runs an instances CSV.
"""

from swtf.vnnlib.benchmark import run_instances
from swtf.vnnlib.parser import parse_vnnlib, read_vnnlib
from swtf.vnnlib.property import Disjunct, Property
from swtf.vnnlib.verify import Verdict, verify_property

__all__ = ["Disjunct", "Property", "Verdict", "parse_vnnlib", "read_vnnlib", "run_instances", "verify_property"]
