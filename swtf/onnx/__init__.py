"""ONNX for the certifier: `from_onnx` (import into a `Network`, checked against onnxruntime) and
`export_onnx` (a Keras model to ONNX, checked against onnxruntime)."""

from swtf.onnx.export import export_onnx
from swtf.onnx.frontend import OnnxNetwork, check_against_runtime, from_onnx

__all__ = ["OnnxNetwork", "check_against_runtime", "export_onnx", "from_onnx"]
