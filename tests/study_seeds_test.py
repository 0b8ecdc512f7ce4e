"""The study over several training seeds through the CLI: each seed trains its own models under its own names,
the first seed's stages are those (and have the keys) of a one-seed study, and the report bootstraps over seeds."""

import json
import os

import pytest

from swtf import io
from tests.cli_helpers import swtf_cli

TINY_STUDY = ["--epochs=3", "--patience=2", "--study_points=20", "--study_students=shallow_cnn:filters=4",
              "--study_temperatures=1", "--study_attack_seeds=0", "--study_apgd_steps=5", "--study_eps_grid=0,0.1",
              "--attack_steps=3", "--robust_warmup_epochs=1", "--robust_ramp_epochs=1", "--study_prune_steps=1",
              "--quiet"]


@pytest.mark.slow
def test_a_second_training_seed_adds_its_own_stages_and_keeps_the_first_seeds_cache(tmp_path):
    run = str(tmp_path / "run")
    one = swtf_cli(*TINY_STUDY, "--study_seeds=0", f"--run_dir={run}")
    assert one.returncode == 0, one.stderr
    keys = {name: io.read_json(os.path.join(run, "stages", name))["key"]
            for name in os.listdir(os.path.join(run, "stages"))}
    with open(os.path.join(run, "metrics.json")) as f:
        single = json.load(f)
    assert "does not cover training randomness" in open(os.path.join(run, "report.md")).read()

    two = swtf_cli(*TINY_STUDY, "--study_seeds=0,1", f"--run_dir={run}")
    assert two.returncode == 0, two.stderr
    for stage in ("teacher", "students", "prune", "robust_teacher", "robust_students", "attack", "certify"):
        assert f"study: {stage}: cached" in two.stdout  # seed 0's stages: same keys as the one-seed study
        assert f"study: {stage}-seed1: cached" not in two.stdout and f"study: {stage}-seed1: " in two.stdout
        assert io.read_json(os.path.join(run, "stages", f"{stage}.json"))["key"] == keys[f"{stage}.json"]
    with open(os.path.join(run, "metrics.json")) as f:
        metrics = json.load(f)
    teacher, teacher1 = metrics["models"]["teacher"], metrics["models"]["teacher-seed1"]
    assert teacher1["training_seed"] == 1 and teacher["test_accuracy"] == single["models"]["teacher"]["test_accuracy"]
    assert metrics["training_seeds"] == [0, 1] and metrics["provenance"]["seeds"]["training"] == [0, 1]
    assert {"teacher", "teacher-seed1", "robust_teacher-seed1"} <= set(metrics["certified"])
    assert all(row["training_seeds"] == 2 for row in metrics["verdicts"])
    assert all(c["per_seed"][1]["teacher"].endswith("-seed1") for c in metrics["claims"])
    report = open(os.path.join(run, "report.md")).read()
    assert "2 training seeds (0, 1)" in report and " ± " in report
    assert "does not cover training randomness" not in report

    forced = swtf_cli(*TINY_STUDY, "--study_seeds=0,1", f"--run_dir={run}", "--force_stage=certify")
    assert forced.returncode == 0, forced.stderr
    assert "study: certify: cached" not in forced.stdout and "study: certify-seed1: cached" not in forced.stdout
    assert "study: attack: cached" in forced.stdout and "study: attack-seed1: cached" in forced.stdout
