"""`--mode=prune` end to end on a tiny digits run, and its flag validation."""

import csv
import json
import types

import numpy as np
import pytest

from swtf import checkpoints, models, prune, runs, train
from swtf.config import Config
from swtf.errors import SwtfError
from swtf.modes import prune as prune_mode

FLAG_DEFAULTS = dict(prune_model="student", prune_teacher="teacher", prune_output=None, prune_policy="layer",
                     prune_fraction=0.5, prune_threshold=None, prune_schedule="polynomial", prune_steps=2,
                     finetune="distill", prune_distill_loss="hinton", prune_temperature=4.0, prune_alpha=0.9,
                     prune_sensitivity=True)


def flag_values(**overrides):
    return types.SimpleNamespace(**dict(FLAG_DEFAULTS, **overrides))


def make_config(run_dir, **overrides):
    return Config(mode="prune", dataset="digits", data_dir=None, run_dir=str(run_dir), seed=0, quiet=True,
                  val_fraction=0.1, train_limit=300, test_limit=100, model="scnn2", hparams={},
                  train=train.TrainOptions(epochs=2, batch_size=64, patience=2),
                  options=prune_mode.options_from_flags(flag_values(**overrides)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with a trained teacher and student (two epochs on 270 digits: enough to be non-trivial)."""
    folder = tmp_path_factory.mktemp("run")
    data = make_config(folder).load_data()
    for name, filters in (("teacher", [32, 32]), ("student", [8, 12])):
        model = models.build("scnn2", data.input_shape, data.num_classes, seed=0, filters=filters)
        train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val), quiet=True,
                  options=train.TrainOptions(epochs=3, batch_size=32))
        runs.save_trained(str(folder), name, model, {"val_accuracy": train.accuracy(model, data.x_val, data.y_val)})
    return folder


def test_prune_mode_writes_the_pruned_model_tables_and_plots(run_dir, capsys):
    prune_mode.run(make_config(run_dir))

    model, record = runs.load_trained(str(run_dir), "student_pruned")
    assert model.hparams["filters"] == [4, 6] and model.architecture == "scnn2"
    conv1, conv2, logits = 3 * 3 * 1 * 4 + 4, 3 * 3 * 4 * 6 + 6, 4 * 4 * 6 * 10 + 10  # 40 + 222 + 970
    assert record["params"] == models.count_params(model) == conv1 + conv2 + logits
    data = make_config(run_dir).load_data()
    assert record["metrics"]["test_accuracy"] == pytest.approx(train.accuracy(model, data.x_test, data.y_test))

    with open(run_dir / "prune" / "student_pruned.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1, 2]
    assert int(rows[-1]["params"]) == record["params"]
    steps = json.loads((run_dir / "prune" / "student_pruned.json").read_text())["steps"]
    assert steps[0]["filters"] == "conv1_1:8 conv1_2:12"
    sensitivity = json.loads((run_dir / "prune" / "student_sensitivity.json").read_text())
    assert len(sensitivity) == 2 * 10
    for png in ("prune_student_pruned_accuracy_vs_params.png", "prune_student_sensitivity.png"):
        assert (run_dir / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert f"parameters {steps[0]['params']:,} -> {record['params']:,}" in out
    checkpoints.load_model(runs.model_path(str(run_dir), "student_pruned"))  # loads under safe_mode


def test_threshold_policy_without_finetuning_and_no_teacher(tmp_path, run_dir):
    student, record = runs.load_trained(str(run_dir), "student")
    runs.save_trained(str(tmp_path), "student", student, record["metrics"])
    scores = prune.l1_filter_scores(student)
    threshold = float(np.median(np.concatenate(list(scores.values()))))
    prune_mode.run(make_config(tmp_path, prune_policy="threshold", prune_threshold=threshold,
                               prune_schedule="oneshot", finetune="none", prune_sensitivity=False))
    pruned, _ = runs.load_trained(str(tmp_path), "student_pruned")
    for name, layer_scores in scores.items():  # filters at or above the threshold stay; a layer keeps >= 1
        assert pruned.get_layer(name).filters == max(1, int(np.sum(layer_scores >= threshold)))
    with pytest.raises(SwtfError, match="--finetune=distill needs the run's teacher 'teacher'"):
        prune_mode.run(make_config(tmp_path))


@pytest.mark.parametrize("overrides,message", [
    ({"prune_fraction": 1.0}, r"--prune_fraction must be in \(0, 1\)"),
    ({"prune_policy": "threshold"}, "needs --prune_threshold > 0"),
    ({"prune_policy": "threshold", "prune_threshold": 1.0}, "use --prune_schedule=oneshot"),
    ({"prune_threshold": 1.0}, "applies to --prune_policy=threshold, not layer"),
    ({"prune_steps": 0}, "--prune_steps must be >= 1"),
    ({"prune_output": "student"}, "must differ from --prune_model"),
    ({"prune_model": "a/b"}, "--prune_model must be letters"),
    ({"prune_alpha": 2.0}, r"--prune_alpha must be in \[0, 1\]"),
])
def test_bad_flags_are_refused_in_one_line(overrides, message):
    with pytest.raises(SwtfError, match=message) as caught:
        prune_mode.options_from_flags(flag_values(**overrides))
    assert "\n" not in str(caught.value)


def test_oneshot_runs_one_round():
    assert prune_mode.options_from_flags(flag_values(prune_schedule="oneshot", prune_steps=5)).steps == 1
