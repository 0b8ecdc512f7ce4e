"""swtf from Python: submodules visible to dir(), export without restating the input shape, a silent import."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import swtf
from swtf import export, models
from swtf.errors import SwtfError
from tests.cli_helpers import REPO


def test_dir_lists_the_lazily_imported_submodules():
    names = dir(swtf)
    assert {"certify", "export", "attack", "SwtfError"} <= set(names)
    assert set(swtf.SUBMODULES) <= set(names)


def test_export_infers_the_input_shape_of_a_zoo_model(tmp_path):
    model = models.build("snn", (8, 8, 1), 10, seed=0)
    path = export.export_saved_model(model, str(tmp_path / "snn"))
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(export.load_serving_function(path)(x), model(x).numpy(), rtol=1e-5, atol=1e-6)


class Unbuilt(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 4)))


def test_export_asks_for_the_input_shape_only_when_the_model_cannot_say(tmp_path):
    with pytest.raises(SwtfError, match="pass input_shape") as error:
        export.export_saved_model(Unbuilt(), str(tmp_path / "unbuilt"))
    assert "\n" not in str(error.value)
    path = export.export_saved_model(Unbuilt(), str(tmp_path / "given"), input_shape=(2, 2, 1))
    assert export.load_serving_function(path)(np.zeros((5, 2, 2, 1))).shape == (5, 3)


def test_export_refuses_an_input_shape_the_model_contradicts(tmp_path):
    with pytest.raises(SwtfError, match=r"differs from the model's input shape \(8, 8, 1\)"):
        export.export_saved_model(models.build("snn", (8, 8, 1), 10), str(tmp_path / "x"), input_shape=(28, 28, 1))


def python(code, **env):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**environment, **env}, timeout=300)


def test_importing_a_submodule_prints_nothing_on_stderr():
    result = python("import swtf.attack, tensorflow as tf; print(float(tf.constant(1.0) + 1))")
    assert result.returncode == 0 and result.stdout == "2.0\n"
    assert result.stderr == ""


def test_a_users_log_level_wins():
    result = python("import os, swtf; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", TF_CPP_MIN_LOG_LEVEL="0")
    assert result.stdout == "0\n", result.stderr
