"""`--mode=certify` as a user runs it: outputs on disk agree with `swtf.certify` called directly, a model
with max pooling is certified, a model with an unsupported activation (elu) is reported and skipped, bad
input is one line and exit code 2."""

import csv
import json
import os
import re
import types

import keras
import numpy as np
import pytest

from swtf import checkpoints, models, runs
from swtf.certify import certified_radius, margin_bounds
from swtf.certify.plots import certified_accuracy_curve
from swtf.certify.results import SoundnessError, _check_soundness
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.modes import certify as certify_mode
from tests.cli_helpers import swtf_cli

POINTS, EPS = 12, 0.02


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with a 2-epoch snn ('teacher'), an untrained max-pooling scnn1 ('pooled') and an untrained dense
    network with an elu activation ('elu'), which the certifier refuses."""
    path = str(tmp_path_factory.mktemp("certify_run"))
    result = swtf_cli("--mode=train", "--model=snn", '--hparams={"width": 16}', "--epochs=2", "--quiet",
                      f"--run_dir={path}")
    assert result.returncode == 0, result.stderr
    pooled = models.build("scnn1", (8, 8, 1), 10, seed=0, filters=4)
    runs.save_trained(path, "pooled", pooled, {})
    elu = models.LayerStack([keras.layers.Flatten(), keras.layers.Dense(8, activation="elu"), keras.layers.Dense(10)],
                            (8, 8, 1))
    runs.save_trained(path, "elu", elu, {})
    return path


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_certify_mode_matches_the_library_and_skips_an_unsupported_activation(run_dir):
    result = swtf_cli("--mode=certify", f"--run_dir={run_dir}", f"--num_points={POINTS}", f"--eps={EPS}",
                      "--exact_time_limit=10", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.load(open(os.path.join(run_dir, "certify", "summary.json")))
    assert set(summary["models"]) == {"teacher", "pooled"}
    assert summary["not_certifiable"]["elu"].startswith("not certifiable:")
    assert "'elu'" in summary["not_certifiable"]["elu"]
    assert not os.path.exists(os.path.join(run_dir, "certify", "elu.csv"))

    data = load_dataset("digits", seed=0)
    x, y = data.x_test[:POINTS], data.y_test[:POINTS]
    model = checkpoints.load_model(runs.model_path(run_dir, "teacher"))
    radius = certified_radius(model, x, y, method="crown")
    certified = (margin_bounds(model, x, y, EPS, method="crown") > 0).all(axis=1)
    predicted = np.argmax(np.asarray(model(x)), axis=1)

    rows = read_csv(os.path.join(run_dir, "certify", "teacher.csv"))
    assert [int(r["index"]) for r in rows] == list(range(POINTS))
    np.testing.assert_array_equal([int(r["label"]) for r in rows], y)
    np.testing.assert_array_equal([int(r["predicted"]) for r in rows], predicted)
    np.testing.assert_allclose([float(r["radius"]) for r in rows], radius, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal([r["certified"] == "True" for r in rows], certified)
    for row in rows:  # a proof and an exact verdict never contradict each other
        assert row["exact"] in ("certified", "counterexample", "unknown")
        assert not (row["certified"] == "True" and row["exact"] == "counterexample")
        assert not (row["exact"] == "certified" and row["pgd_attacked"] == "True")

    teacher = summary["models"]["teacher"]
    assert teacher["points"] == POINTS and teacher["eps"] == EPS and teacher["method"] == "crown"
    assert teacher["clean_accuracy"] == pytest.approx(np.mean(predicted == y))
    assert teacher["certified_accuracy"] == pytest.approx(np.mean(certified))
    assert teacher["mean_radius"] == pytest.approx(np.mean(radius), abs=1e-12)
    assert teacher["median_radius"] == pytest.approx(np.median(radius), abs=1e-12)
    assert teacher["certified_accuracy"] <= teacher["pgd_accuracy"] <= teacher["clean_accuracy"]
    assert sum(teacher["exact"].values()) == POINTS
    assert teacher["exact"]["certified"] >= teacher["certified_accuracy"] * POINTS
    written = json.load(open(os.path.join(run_dir, "certify", "teacher.json")))
    assert written["summary"] == teacher
    assert [p["radius"] for p in written["points"]] == [float(r["radius"]) for r in rows]
    for plot in ("certify_radii.png", "certify_accuracy.png"):
        with open(os.path.join(runs.plots_dir(run_dir), plot), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_model_path_with_ibp_and_l2(run_dir, tmp_path):
    other = str(tmp_path / "other_run")
    path = runs.model_path(run_dir, "teacher")
    result = swtf_cli("--mode=certify", f"--run_dir={other}", f"--model_path={path}", "--num_points=5",
                      "--method=ibp", "--norm=l2", "--eps=0.1", "--max_radius=2", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = read_csv(os.path.join(other, "certify", "teacher.csv"))
    data = load_dataset("digits", seed=0)
    model = checkpoints.load_model(path)
    expected = certified_radius(model, data.x_test[:5], data.y_test[:5], norm="l2", method="ibp", max_radius=2)
    np.testing.assert_allclose([float(r["radius"]) for r in rows], expected, rtol=1e-9, atol=1e-12)
    assert all(r["exact"] == "" for r in rows)


@pytest.mark.parametrize("args,fragment", [
    (["--eps=-0.1"], "--eps must be"),
    (["--method=beta-crown"], "--method"),
    (["--certify_models=nosuch"], "no trained model 'nosuch'"),
])
def test_bad_input_is_one_line_and_exit_code_2(run_dir, args, fragment):
    result = swtf_cli("--mode=certify", f"--run_dir={run_dir}", "--num_points=2", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("swtf: error:") and fragment in lines[0], result.stderr


FLAG_DEFAULTS = dict(eps=0.02, num_points=10, max_radius=None, exact_time_limit=0.0, norm="linf", method="crown",
                     model_path=None, certify_models=None)


@pytest.mark.parametrize("flags,fragment", [
    ({"norm": "l2", "exact_time_limit": 5.0}, "mixed-integer quadratic"),
    ({"num_points": 0}, "--num_points"),
    ({"max_radius": float("inf")}, "--max_radius"),
    ({"exact_time_limit": -1.0}, "--exact_time_limit"),
    ({"model_path": "a.keras", "certify_models": ["teacher"]}, "not both"),
    ({"certify_models": ["../etc"]}, "--certify_models"),
])
def test_bad_flag_values_are_refused_with_one_line(flags, fragment):
    with pytest.raises(SwtfError, match=re.escape(fragment)) as err:
        certify_mode.options_from_flags(types.SimpleNamespace(**{**FLAG_DEFAULTS, **flags}))
    assert "\n" not in str(err.value)


def test_a_missing_model_path_is_refused(tmp_path):
    with pytest.raises(SwtfError, match="not found"):
        certify_mode._load_path(str(tmp_path / "missing.keras"))
    with pytest.raises(SwtfError, match="neither a .keras file nor a SavedModel"):
        certify_mode._load_path(str(tmp_path))


def test_a_certified_point_that_is_attacked_is_a_soundness_bug():
    with pytest.raises(SoundnessError, match="point 1: crown certifies it but PGD"):
        _check_soundness("m", "crown", 0.1, np.array([False, True]), np.array([False, True]), None)
    _check_soundness("m", "crown", 0.1, np.array([True, False]), np.array([False, True]), None)  # no clash


def test_certified_accuracy_curve_counts_correct_points_with_large_enough_radii():
    radii = np.array([0.0, 0.0, 0.1, 0.3])
    correct = np.array([False, True, True, True])
    np.testing.assert_allclose(certified_accuracy_curve(radii, correct, [0.0, 0.05, 0.1, 0.2, 0.31]),
                               [0.75, 0.5, 0.5, 0.25, 0.0])
