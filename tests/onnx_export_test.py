"""ONNX export of swtf Keras models: onnxruntime reproduces Keras (max pooling included), the export of a
certifiable model imports back into the same Network values as the Keras front-end, and the CLI mode."""

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from swtf import models, runs
from swtf.certify import forward, from_keras
from swtf.errors import SwtfError
from swtf.onnx import export as onnx_export
from swtf.onnx import from_onnx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)


def runtime(path, x):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name,hparams", [("scnn2", dict(filters=(4, 8))),
                                          ("convex_cnn", dict(filters=(4, 8), dense=(16,)))])
def test_export_matches_keras_on_onnxruntime(tmp_path, name, hparams):
    model = models.build(name, (8, 8, 1), 10, seed=0, **hparams)
    path = str(tmp_path / f"{name}.onnx")
    gap = onnx_export.export_onnx(model, path, (8, 8, 1), PROBE)
    x = np.random.default_rng(1).random((3, 8, 8, 1), dtype=np.float32)
    independent = np.max(np.abs(runtime(path, x) - model(x, training=False).numpy()))
    assert gap <= onnx_export.MAX_GAP and independent <= onnx_export.MAX_GAP


def test_exported_certifiable_model_imports_to_the_keras_frontends_values(tmp_path):
    model = models.build("convex_cnn", (8, 8, 1), 10, seed=0, filters=(4, 8), dense=(16,))
    path = str(tmp_path / "m.onnx")
    onnx_export.export_onnx(model, path, (8, 8, 1), PROBE)
    imported = from_onnx(path)
    assert imported.network.input_shape == (8, 8, 1)
    np.testing.assert_allclose(imported.network_outputs(PROBE.reshape(5, -1)), forward(from_keras(model), PROBE),
                               atol=1e-6)


def test_a_mismatching_export_is_refused(tmp_path, monkeypatch):
    model = models.build("snn", (8, 8, 1), 10, seed=0, width=8)
    monkeypatch.setattr(onnx_export, "runtime_gap", lambda proto, m, probe: 0.5)
    with pytest.raises(SwtfError, match="differs from the Keras model by 0.5"):
        onnx_export.export_onnx(model, str(tmp_path / "m.onnx"), (8, 8, 1), PROBE)
    assert not os.path.exists(tmp_path / "m.onnx")


def test_an_export_failing_the_onnx_check_is_refused_before_writing(tmp_path, monkeypatch):
    model = models.build("snn", (8, 8, 1), 10, seed=0, width=8)

    def failing_check(proto):
        raise onnx.checker.ValidationError("Field 'type' of 'value_info' is required but missing.")

    monkeypatch.setattr(onnx.checker, "check_model", failing_check)
    path = tmp_path / "m.onnx"
    with pytest.raises(SwtfError, match="fails onnx's model check"):
        onnx_export.export_onnx(model, str(path), (8, 8, 1), PROBE)
    assert not path.exists()


def test_export_mode_writes_onnx(tmp_path):
    run_dir = str(tmp_path / "run")
    runs.save_trained(run_dir, "pooled", models.build("scnn1", (8, 8, 1), 10, seed=0, filters=4), {})
    out = str(tmp_path / "pooled.onnx")
    result = subprocess.run([sys.executable, "-m", "swtf.main", "--mode=export", "--export_format=onnx",
                             "--export_model=pooled", f"--export_dir={out}", f"--run_dir={run_dir}"],
                            capture_output=True, text=True, cwd=REPO, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr
    assert "onnxruntime check max |diff|" in result.stdout and os.path.isfile(out)
    model, _ = runs.load_trained(run_dir, "pooled")
    x = PROBE[:2]
    assert np.max(np.abs(runtime(out, x) - model(x, training=False).numpy())) <= 1e-4
