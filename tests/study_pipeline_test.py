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


def fake_study_stages(points=120, grid=(0.0, 0.05, 0.1), training_seeds=None):
    """Stages that write what the study's attack and certify stages write, for a teacher and a student, from
    seeded random outcomes instead of trained models (the report only reads artifacts). With `training_seeds`,
    one teacher and student per seed (the first seed's names plain, the others' with "-seed<s>", as the study
    names them) and the study's `study/seeds.json`; the per-seed values are returned by suffix."""
    from swtf import io
    from swtf.attack import curves
    from swtf.study.stages import artifact_path, seed_suffix

    rng = np.random.default_rng(0)
    suffixes = [""] if training_seeds is None else [seed_suffix(s, training_seeds) for s in training_seeds]
    clean, outcomes, radii = {}, {}, {}
    for number, suffix in enumerate(suffixes):
        for role in ("teacher", "student"):
            name = role + suffix
            clean[name] = rng.random(points) < 0.9
            outcomes[name] = [[list(clean[name] & (rng.random(points) < 1 - eps * 5)) for _ in range(2)]
                              for eps in grid]
            scale = 0.1 + (0.02 * number if role == "student" else 0.0)  # the student gains more in later seeds
            radii[name] = list(np.where(clean[name], rng.random(points) * scale, 0.0))

    def models(context):
        for suffix in suffixes:
            for name, record in (("teacher", {"role": "teacher", "test_accuracy": 0.9}),
                                 ("student", {"role": "student", "teacher": "teacher" + suffix, "val_accuracy": 0.9,
                                              "test_accuracy": 0.9})):
                io.write_json(os.path.join(context.config.run_dir, "models", f"{name}{suffix}.json"),
                              {"architecture": "snn", "params": 100, "metrics": record})
                io.write_text(os.path.join(context.config.run_dir, "models", f"{name}{suffix}.keras"), "")
        io.write_text(os.path.join(context.config.run_dir, "flags_study.cfg"),
                      "# effective flags\n--seed=3\n--study_max_radius=0.5\n--noquiet\n--prune_sensitivity\n")
        if training_seeds is not None:
            io.write_json(artifact_path(context.config, "seeds.json"), {
                "training_seeds": list(training_seeds), "suffixes": {str(s): x for s, x in zip(training_seeds,
                                                                                             suffixes)}})
        return "models written"

    def attack(context):
        for suffix in suffixes:
            curves.write_curves(artifact_path(context.config, "attack", suffix), {
                name + suffix: curves.curve_from_outcomes(
                    {"eps": list(grid), "seeds": [0, 1], "correct": outcomes[name + suffix]}, attack="pgd",
                    backend="swtf", settings={}) for name in ("teacher", "student")},
                attack="pgd", norm="linf", steps=5, restarts=1)
        return "attacked"

    def certify(context):
        for suffix in suffixes:
            names = ("teacher" + suffix, "student" + suffix)
            io.write_json(artifact_path(context.config, "certify.json", suffix), {
                "points": points, "eps": 0.05, "labels": [0] * points, "methods": ["crown"],
                "radii": {name: {"crown": radii[name]} for name in names},
                "correct": {name: [bool(c) for c in clean[name]] for name in names}, "not_certifiable": {}})
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
    assert provenance["seeds"] == {"training": [3], "attack": [0, 1], "bootstrap": 0}
    assert provenance["settings"]["attack"]["steps"] == 5 and provenance["settings"]["certify"]["max_radius"] == "0.5"
    assert datetime.datetime.fromisoformat(provenance["created"]).tzinfo is not None
    assert set(provenance["versions"]) == {"tensorflow", "keras", "numpy", "python"} and provenance["command"]

    report = (tmp_path / "report.md").read_text()
    for heading in ("## Provenance", "### teacher and its students", "empirical robust accuracy at eps=0.05",
                    "clean accuracy (120 points)", "Holm-corrected across the 2 claims"):
        assert heading in report
    assert "Not shown" not in report
    assert "Provenance" in (tmp_path / "report.html").read_text()
    # One training seed: beside the verdict, the report says what it does not cover and how to cover it.
    verdict_section = report.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    assert "does not cover training randomness" in verdict_section and "--study_seeds=0,1,2" in verdict_section
    assert "one training seed: 3" in verdict_section
    assert "does not cover training randomness" in (tmp_path / "report.html").read_text()
    assert "±" not in report and "certified_over_seeds" not in metrics


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
    # The plot sits directly under the verdict section, before the models' tables.
    after_verdict = report.split("## Verdict", 1)[1].split("\n## ")[1]
    assert after_verdict.startswith("Robustness: certified and empirical robust accuracy of teacher")
    assert report.index("robust_accuracy_teacher.png") < report.index("## Models") < report.index("## Provenance")
    assert "robust_accuracy_teacher.png" not in (tmp_path / "report.html").read_text()  # embedded, not linked
    page = (tmp_path / "report.html").read_text()
    assert "on the dashed lines for certifiability" in page
    assert page.index("<h2>Verdict</h2>") < page.index("on the dashed lines for certifiability") \
        < page.index("<h2>Models</h2>") < page.index("<h2>Plots</h2>")
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


def _hierarchical_reference(diff, samples, seed):
    """The hierarchical bootstrap written as a plain loop over replicates and seed slots (same RNG draws)."""
    count, n = diff.shape
    rng = np.random.default_rng(seed)
    points = rng.integers(0, n, size=(samples, count, n))
    seeds = rng.integers(0, count, size=(samples, count))
    means = []
    for b in range(samples):
        means.append(np.mean([np.mean(diff[seeds[b, k]][points[b, k]]) for k in range(count)]))
    return np.asarray(means)


def test_report_over_several_training_seeds_bootstraps_seeds_then_points(tmp_path):
    from swtf.report import build, verdict

    stages, clean, outcomes, radii = fake_study_stages(training_seeds=(0, 1, 2))
    run = types.SimpleNamespace(run_dir=str(tmp_path), quiet=True, dataset="digits", seed=0)
    pipeline.run_pipeline(stages, run, None, log=lambda line: None)
    build.build_report(run)
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)

    assert metrics["training_seeds"] == [0, 1, 2]
    assert metrics["provenance"]["seeds"] == {"training": [0, 1, 2], "attack": [0, 1], "bootstrap": 0}
    rows = {row["basis"]: row for row in metrics["verdicts"]}
    assert set(rows) == {"certified", "empirical"} and len(metrics["claims"]) == 1
    assert metrics["claims"][0]["teacher"] == "teacher" and metrics["claims"][0]["student"] == "student"
    assert [p["student"] for p in metrics["claims"][0]["per_seed"]] == ["student", "student-seed1", "student-seed2"]
    suffixes = ["", "-seed1", "-seed2"]
    diff = np.array([np.asarray(radii["student" + x]) - np.asarray(radii["teacher" + x]) for x in suffixes])
    means = _hierarchical_reference(diff, verdict.BOOTSTRAP_SAMPLES, 0)
    row = rows["certified"]
    assert row["training_seeds"] == 3
    assert row["mean_radius_difference"] == pytest.approx(np.mean([d.mean() for d in diff]))
    np.testing.assert_allclose(row["interval"], np.quantile(means, [0.025, 0.975]), rtol=1e-12)
    assert row["p_value"] == pytest.approx(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))
    # The per-seed summaries stay under their own names; the table shows mean ± sd over the seeds.
    assert set(metrics["certified"]) == {"teacher" + x for x in suffixes} | {"student" + x for x in suffixes}
    over = metrics["certified_over_seeds"]["student"]
    values = [np.mean(radii["student" + x]) for x in suffixes]
    assert over["mean_radius"]["mean"] == pytest.approx(np.mean(values))
    assert over["mean_radius"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert over["training_seeds"] == [0, 1, 2]
    report = (tmp_path / "report.md").read_text()
    models = report.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert "3 training seeds (0, 1, 2)" in models
    assert f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" in models
    assert "does not cover training randomness" not in report
    assert "Training randomness: covered" in report and "hierarchical bootstrap" in report
    assert "3 training seeds (hierarchical bootstrap)" in metrics["claims"][0]["sentence"]
