"""Sharded certify, attack and sweep runs merge into exactly the unsharded results, point for point and
row for row, and agree with the library called directly on the whole point set."""

import os
import shutil

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import swtf.attack
from swtf import config as config_lib
from swtf import io, models, modes, runs, train
from swtf.certify import certified_radius
from swtf.data import load_dataset
from swtf.modes import attack as attack_mode
from swtf.modes import certify as certify_mode
from swtf.modes import distill as distill_mode

FLAGS = flags.FLAGS
modes.import_available()  # defines every mode's flags (--attack_steps is shared with the study)
POINTS = 20
TIMING = ("seconds", "certify_seconds", "train_seconds")


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data):
    """A run with a 3-epoch snn 'teacher'."""
    folder = str(tmp_path_factory.mktemp("trained"))
    teacher = models.build("snn", data.input_shape, data.num_classes, seed=0, width=16)
    train.fit(teacher, (data.x_train, data.y_train), (data.x_val, data.y_val),
              options=train.TrainOptions(epochs=3, learning_rate=1e-2, seed=0), quiet=True)
    runs.save_trained(folder, "teacher", teacher, {})
    return folder


def copy_run(trained_run, tmp_path, name):
    folder = str(tmp_path / name)
    shutil.copytree(trained_run, folder)
    return folder


def run_mode(module, **flag_values):
    with flagsaver.flagsaver(**{"dataset": "digits", "quiet": True, **flag_values}):
        config = config_lib.config_from_flags(FLAGS, module.options_from_flags(FLAGS))
        module.run(config)


def without_timing(row):
    return {key: value for key, value in row.items() if key not in TIMING}


def test_certify_shards_merge_into_the_unsharded_result(trained_run, tmp_path, data, capsys):
    whole, split = copy_run(trained_run, tmp_path, "whole"), copy_run(trained_run, tmp_path, "split")
    flag_values = dict(mode="certify", num_points=POINTS, eps=0.02, method="crown")
    run_mode(certify_mode, run_dir=whole, **flag_values)
    run_mode(certify_mode, run_dir=split, num_shards=2, shard_index=1, **flag_values)
    assert "waiting for shards 0 of 2" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(split, "certify", "teacher.json"))
    run_mode(certify_mode, run_dir=split, num_shards=2, shard_index=0, **flag_values)  # the last shard merges

    expected, merged = (io.read_json(os.path.join(run, "certify", "teacher.json")) for run in (whole, split))
    shard_rows = io.read_json(os.path.join(split, "certify", "shards", "shard-1-of-2.json"))["result"]
    assert [row["index"] for row in shard_rows["models"]["teacher"]["rows"]] == list(range(10, 20))
    assert [without_timing(r) for r in merged["points"]] == [without_timing(r) for r in expected["points"]]
    assert without_timing(merged["summary"]) == without_timing(expected["summary"])
    assert any(row["pgd_attacked"] for row in merged["points"])  # PGD's random starts matched where it succeeded
    model, _ = runs.load_trained(whole, "teacher")
    x, y = data.x_test[:POINTS], data.y_test[:POINTS]
    radii = certified_radius(model, x, y, method="crown")
    assert [row["radius"] for row in merged["points"]] == radii.tolist()
    assert (radii > 0).sum() >= 3  # the comparison covers certified points, not only zeros


def test_attack_shards_merge_into_the_unsharded_curves(trained_run, tmp_path, data):
    whole, split = copy_run(trained_run, tmp_path, "whole"), copy_run(trained_run, tmp_path, "split")
    flag_values = dict(mode="attack", attack_points=40, attack_eps=["0", "0.1"], attack_seeds=["0", "1"],
                       attack_steps=3, attack_batch_size=10)
    run_mode(attack_mode, run_dir=whole, **flag_values)
    run_mode(attack_mode, run_dir=split, num_shards=2, **flag_values)  # both shards in turn, then the merge
    expected, merged = (io.read_json(os.path.join(run, "attack", "curves.json"))["curves"]["teacher"]
                        for run in (whole, split))
    assert os.path.isfile(os.path.join(split, "attack", "shards", "shard-1-of-2.json"))
    assert merged["correct"] == expected["correct"] and merged["accuracy"] == expected["accuracy"]
    model, _ = runs.load_trained(whole, "teacher")
    x, y = data.x_test[:40], data.y_test[:40]
    direct = [swtf.attack.robust_accuracy(model, x, y, 0.1, steps=3, restarts=1, seed=s, batch_size=10)
              for s in (0, 1)]
    assert merged["accuracy"][1] == direct
    assert 0 < np.mean(direct) < merged["accuracy"][0][0]  # the attack changes some points, not all


def test_sweep_shards_merge_row_for_row(trained_run, tmp_path):
    whole, split = copy_run(trained_run, tmp_path, "whole"), copy_run(trained_run, tmp_path, "split")
    flag_values = dict(mode="distill", sweep="snn:width=8", sweep_methods=["labels", "soft_targets"],
                       temperatures=["1", "4"], seeds=["0"], epochs=1)
    run_mode(distill_mode, run_dir=whole, **flag_values)
    run_mode(distill_mode, run_dir=split, num_shards=2, **flag_values)
    expected, merged = (io.read_json(os.path.join(run, "distill", "study_rows.json")) for run in (whole, split))
    assert [(r["method"], r["temperature"]) for r in merged] == [("labels", None), ("soft_targets", 1.0),
                                                                 ("soft_targets", 4.0)]
    assert [without_timing(r) for r in merged] == [without_timing(r) for r in expected]
    first = io.read_json(os.path.join(split, "distill", "shards", "shard-0-of-2.json"))["result"]
    assert [(r["method"], r["temperature"]) for r in first] == [("labels", None), ("soft_targets", 4.0)]
    assert io.read_json(os.path.join(split, "distill", "study_summary.json")) == \
        io.read_json(os.path.join(whole, "distill", "study_summary.json"))
