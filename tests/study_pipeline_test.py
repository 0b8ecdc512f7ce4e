"""The stage pipeline: skips finished stages, reruns changed or forced ones and everything downstream."""

import types

import pytest

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
