"""`--mode=export`: writes a trained model of the run as a SavedModel (or, with `--export_format=onnx`, an
ONNX file checked against onnxruntime) under `saved_models/`."""

import dataclasses
import os

import numpy as np

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import export, runs
from swtf.errors import SwtfError
from swtf.onnx import export as onnx_export


@dataclasses.dataclass(frozen=True)
class Options:
    model_name: str
    export_dir: str
    export_format: str


def options_from_flags(fv):
    if not fv.export_model:
        raise SwtfError("--export_model must name a trained model of the run, e.g. teacher")
    return Options(model_name=fv.export_model, export_dir=fv.export_dir, export_format=fv.export_format)


def run(config):
    opts = config.options
    model, _ = runs.load_trained(config.run_dir, opts.model_name)
    run_name = os.path.basename(os.path.normpath(config.run_dir))
    probe = np.random.default_rng(config.seed).random((8,) + tuple(model.input_shape_), dtype=np.float32)
    if opts.export_format == "onnx":
        path = opts.export_dir or os.path.join("saved_models", f"{run_name}_{opts.model_name}.onnx")
        gap = onnx_export.export_onnx(model, path, model.input_shape_, probe)
        print(f"export: {opts.model_name} -> {path} (ONNX opset {onnx_export.OPSET}, input "
              f"{onnx_export.INPUT_NAME!r}; onnxruntime check max |diff| {gap:.2g})")
        return
    path = opts.export_dir or os.path.join("saved_models", f"{run_name}_{opts.model_name}")
    export.export_saved_model(model, path, model.input_shape_)
    gap = float(np.max(np.abs(export.load_serving_function(path)(probe) - np.asarray(model(probe)))))
    if gap > 1e-5:
        raise SwtfError(f"exported SavedModel at {path} differs from the Keras model by {gap:.3g}; not exported")
    print(f"export: {opts.model_name} -> {path} (signature {export.SIGNATURE}: {export.INPUT_NAME} -> "
          f"{export.OUTPUT_NAME}; reload check max |diff| {gap:.2g})")
