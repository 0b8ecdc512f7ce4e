"""The stage pipeline: skips finished stages, reruns changed or forced ones and everything downstream; the
report of a (fake) study's artifacts carries the verdict's per-basis rows, per-model summaries and provenance."""

import datetime
import json
import os
import re
import types

import numpy as np
import pytest

import swtf
from swtf.errors import SwtfError
from swtf.study import pipeline
from swtf.study.ledger import StageLedger, stage_key


def make_stages(calls, fail_at=None):
    def runner(name):
        def run(context):
            if name == fail_at:
                raise RuntimeError("killed")
            calls.append(name)
            return f"{name} done"
        return run

    return [
        pipeline.Stage("a", (), lambda c: {"x": c.x}, runner("a")),
        pipeline.Stage("b", ("a",), lambda c: {"y": c.y}, runner("b")),
        pipeline.Stage("c", ("a",), lambda c: {}, runner("c")),
        pipeline.Stage("d", ("b",), lambda c: {}, runner("d")),
    ]


def config(tmp_path, x=1, y=1):
    return types.SimpleNamespace(run_dir=str(tmp_path), quiet=True, x=x, y=y)


def test_rerun_skips_finished_stages(tmp_path):
    calls = []
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, log=lambda line: None)
    assert calls == ["a", "b", "c", "d"]
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, log=lambda line: None)
    assert calls == ["a", "b", "c", "d"]


def test_changed_setting_reruns_that_stage_and_downstream_only(tmp_path):
    calls = []
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, log=lambda line: None)
    calls.clear()
    pipeline.run_pipeline(make_stages(calls), config(tmp_path, y=2), None, log=lambda line: None)
    assert calls == ["b", "d"]
    calls.clear()
    pipeline.run_pipeline(make_stages(calls), config(tmp_path, x=5, y=2), None, log=lambda line: None)
    assert calls == ["a", "b", "c", "d"]


def test_force_stage_reruns_it_and_downstream(tmp_path):
    calls = []
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, log=lambda line: None)
    calls.clear()
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, force_stage="b", log=lambda line: None)
    assert calls == ["b", "d"]
    with pytest.raises(SwtfError, match="not a stage"):
        pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, force_stage="zzz", log=lambda line: None)


def test_killed_stage_leaves_no_marker_and_resumes_there(tmp_path):
    calls = []
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(make_stages(calls, fail_at="c"), config(tmp_path), None, log=lambda line: None)
    assert calls == ["a", "b"]
    ledger = StageLedger(str(tmp_path))
    assert set(ledger.summaries()) == {"a", "b"}
    calls.clear()
    pipeline.run_pipeline(make_stages(calls), config(tmp_path), None, log=lambda line: None)
    assert calls == ["c", "d"]


def test_stage_key_depends_on_settings_and_upstream():
    assert stage_key({"a": 1}) == stage_key({"a": 1})
    assert stage_key({"a": 1}) != stage_key({"a": 2})
    assert stage_key({"a": 1}, ["k1"]) != stage_key({"a": 1}, ["k2"])


def fake_study_stages(points=120, grid=(0.0, 0.05, 0.1)):
    """Two stages that write what the study's attack and certify stages write, for a teacher and a student, from
    seeded random outcomes instead of trained models (the report only reads artifacts)."""
    from swtf import io
    from swtf.attack import curves
    from swtf.study.stages import artifact_path

    rng = np.random.default_rng(0)
    clean = {name: rng.random(points) < 0.9 for name in ("teacher", "student")}
    outcomes = {name: [[list(clean[name] & (rng.random(points) < 1 - eps * 5)) for _ in range(2)] for eps in grid]
                for name in clean}
    radii = {name: list(np.where(clean[name], rng.random(points) * 0.1, 0.0)) for name in clean}

    def models(context):
        for name, record in (("teacher", {"role": "teacher", "test_accuracy": 0.9}),
                             ("student", {"role": "student", "teacher": "teacher", "val_accuracy": 0.9,
                                          "test_accuracy": 0.9})):
            io.write_json(os.path.join(context.config.run_dir, "models", f"{name}.json"),
                          {"architecture": "snn", "params": 100, "metrics": record})
            io.write_text(os.path.join(context.config.run_dir, "models", f"{name}.keras"), "")
        io.write_text(os.path.join(context.config.run_dir, "flags_study.cfg"),
                      "# effective flags\n--seed=3\n--study_max_radius=0.5\n--noquiet\n--prune_sensitivity\n")
        return "models written"

    def attack(context):
        curves.write_curves(artifact_path(context.config, "attack"), {
            name: curves.curve_from_outcomes({"eps": list(grid), "seeds": [0, 1], "correct": outcome},
                                             attack="pgd", backend="swtf", settings={})
            for name, outcome in outcomes.items()}, attack="pgd", norm="linf", steps=5, restarts=1)
        return "attacked"

    def certify(context):
        io.write_json(artifact_path(context.config, "certify.json"), {
            "points": points, "eps": 0.05, "labels": [0] * points, "methods": ["crown"],
            "radii": {name: {"crown": r} for name, r in radii.items()},
            "correct": {name: [bool(c) for c in clean[name]] for name in clean}, "not_certifiable": {}})
        return "certified"

    stages = [pipeline.Stage("models", (), lambda c: {}, models),
              pipeline.Stage("attack", ("models",), lambda c: {}, attack),
              pipeline.Stage("certify", ("models",), lambda c: {}, certify)]
    return stages, clean, outcomes, radii


def test_report_of_a_tiny_study_writes_the_new_metrics_keys(tmp_path):
    from swtf.report import build

    stages, clean, outcomes, radii = fake_study_stages()
    run = types.SimpleNamespace(run_dir=str(tmp_path), quiet=True, dataset="digits", seed=0)
    pipeline.run_pipeline(stages, run, None, log=lambda line: None)
    build.build_report(run)
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)

    for name in ("teacher", "student"):
        summary = metrics["certified"][name]
        correct = np.asarray(outcomes[name])  # [eps][seed][point]; eps 0.05 is the study's eps, index 1
        assert summary["points"] == 120
        assert summary["empirical_robust_accuracy"] == pytest.approx(np.mean(correct[1].all(axis=0) & clean[name]))
        broken_at = [next((eps for eps, c in zip((0.0, 0.05, 0.1), correct[:, :, i]) if not c.all()), np.inf)
                     for i in range(120)]
        assert summary["mean_attack_radius"] == pytest.approx(np.mean(np.minimum(broken_at, 0.1)))
        finite = np.isfinite(broken_at)
        assert summary["verifier_gap"] == pytest.approx(
            np.mean(np.asarray(broken_at)[finite]) - np.mean(np.asarray(radii[name])[finite]))
    assert [(v["teacher"], v["student"], v["basis"]) for v in metrics["verdicts"]] == [
        ("teacher", "student", "certified"), ("teacher", "student", "empirical")]
    assert all(v["answer"] in ("yes", "no", "inconclusive") and "sentence" in v and "interval" in v
               for v in metrics["verdicts"])
    assert metrics["claims"][0]["answer"] in ("yes", "no", "inconclusive")

    provenance = metrics["provenance"]
    assert provenance["version"] == swtf.__version__
    assert provenance["flags"] == {"study": {"seed": "3", "study_max_radius": "0.5", "quiet": "false",
                                             "prune_sensitivity": "true"}}
    assert provenance["seeds"] == {"training": 3, "attack": [0, 1], "bootstrap": 0}
    assert provenance["settings"]["attack"]["steps"] == 5 and provenance["settings"]["certify"]["max_radius"] == "0.5"
    assert datetime.datetime.fromisoformat(provenance["created"]).tzinfo is not None
    assert set(provenance["versions"]) == {"tensorflow", "keras", "numpy", "python"} and provenance["command"]

    report = (tmp_path / "report.md").read_text()
    for heading in ("## Provenance", "### teacher and its students", "empirical robust accuracy at eps=0.05",
                    "clean accuracy (120 points)", "Holm-corrected across the 2 claims"):
        assert heading in report
    assert "Not shown" not in report
    assert "Provenance" in (tmp_path / "report.html").read_text()


def test_report_plots_each_teachers_certified_and_empirical_accuracy_on_the_attack_grid(tmp_path, monkeypatch):
    from swtf.report import build

    drawn = []
    original = build.plots.robust_accuracy_vs_eps
    monkeypatch.setattr(build.plots, "robust_accuracy_vs_eps", lambda *args: drawn.append(args) or original(*args))
    stages, clean, outcomes, radii = fake_study_stages()
    run = types.SimpleNamespace(run_dir=str(tmp_path), quiet=True, dataset="digits", seed=0)
    pipeline.run_pipeline(stages, run, None, log=lambda line: None)
    build.build_report(run)

    (eps_grid, empirical, certified, teacher, title, points, method, path), = drawn
    assert teacher == "teacher" and points == 120 and method == "crown" and set(empirical) == {"teacher", "student"}
    assert "PGD, 5 steps x 1 restart" in title and "digits" in title
    for name in ("teacher", "student"):
        correct = np.asarray(outcomes[name])  # [eps][seed][point]
        np.testing.assert_allclose(empirical[name], [np.mean(c.all(axis=0) & clean[name]) for c in correct])
        np.testing.assert_allclose(certified[name], [np.mean(clean[name] & (np.asarray(radii[name]) >= eps))
                                                     for eps in eps_grid])
    report = (tmp_path / "report.md").read_text()
    assert "![Robustness: certified and empirical robust accuracy of teacher and its students]" \
           "(plots/robust_accuracy_teacher.png)" in report
    assert "the gap between a model's dashed and solid line is what the verifier cannot prove" in report.lower()
    assert "robust_accuracy_teacher.png" not in (tmp_path / "report.html").read_text()  # embedded, not linked
    page = (tmp_path / "report.html").read_text()
    assert "on the dashed lines for certifiability" in page
    # The page is titled by the study, not by its last plot (a loop variable once shadowed the title).
    assert re.search(r"<title>swtf study: [^<]+</title>", page) and re.search(r"<h1>swtf study: [^<]+</h1>", page)
    assert os.path.isfile(path)


def test_the_report_names_the_data_set_the_run_was_trained_on(tmp_path):
    """`--mode=report --run_dir=RUN` alone leaves --dataset at digits; the title must say what RUN recorded."""
    from swtf.report import build

    (tmp_path / "flags_study.cfg").write_text("# Effective flags\n--dataset=mnist\n--seed=0\n")
    (tmp_path / "flags_report.cfg").write_text("# Effective flags\n--dataset=digits\n")
    assert build.run_dataset(types.SimpleNamespace(run_dir=str(tmp_path), dataset="digits")) == "mnist"
    (tmp_path / "flags_study.cfg").unlink()
    assert build.run_dataset(types.SimpleNamespace(run_dir=str(tmp_path), dataset="digits")) == "digits"
