"""A hostile file system and bad input (issue 20): every failure is one line naming the path or flag and the
fix, and nothing already finished is lost. Full disks, unwritable or missing run directories, artifact
permissions, corrupt model files and records, replaced models under a cached study, out-of-range radii."""

import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import types

import keras
import pytest
from absl import flags
from absl.testing import flagsaver

from swtf import checkpoints, io, models, modes, runs
from swtf import config as config_lib
from swtf.distribute.records import content_digest
from swtf.errors import SwtfError
from swtf.modes import attack as attack_mode
from swtf.modes import certify as certify_mode
from swtf.modes import report as report_mode
from swtf.modes import study as study_mode
from swtf.modes import train as train_mode
from swtf.study import pipeline
from swtf.study.ledger import StageLedger
from tests.cli_helpers import REPO, assert_one_line_error, swtf_cli

FLAGS = flags.FLAGS
modes.import_available()  # defines every mode's flags
TINY = dict(dataset="digits", quiet=True, train_limit=200, test_limit=50, epochs=1)


def tiny_model(seed=0):
    return models.build("snn", (8, 8, 1), 10, seed=seed, width=8)


def run_mode(module, **flag_values):
    """Runs `module` in-process as `swtf --mode=...` with the tiny settings and `flag_values`."""
    with flagsaver.flagsaver(**{**TINY, **flag_values}):
        options = module.options_from_flags(FLAGS) if hasattr(module, "options_from_flags") else None
        module.run(config_lib.config_from_flags(FLAGS, options))


def temporaries(folder):
    return [name for _, _, names in os.walk(folder) for name in names if io.is_temporary(name)]


def json_files(folder):
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
            if name.endswith(".json") and not io.is_temporary(name)]


@pytest.fixture
def full_disk(monkeypatch):
    """`fill(after=n)`: every fsync after the first n fails with ENOSPC, as on a disk that just filled up."""
    def fill(after=0):
        real_fsync, calls = os.fsync, []

        def fsync(fd):
            calls.append(fd)
            if len(calls) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    return fill


# --- full disk, permissions, unwritable and missing run directories ----------------------------------------

def test_a_full_disk_is_one_line_naming_the_file_and_keeps_its_previous_version(tmp_path, full_disk):
    path = str(tmp_path / "metrics.json")
    io.write_json(path, {"accuracy": 0.9})
    full_disk()
    with pytest.raises(SwtfError) as err:
        io.write_json(path, {"accuracy": 0.1})
    message = str(err.value)
    assert "\n" not in message and path in message and "No space left" in message and "free space" in message
    assert io.read_json(path) == {"accuracy": 0.9} and not temporaries(tmp_path)


def test_a_full_disk_in_train_keeps_the_model_trained_before(tmp_path, full_disk):
    run_dir = str(tmp_path)
    run_mode(train_mode, mode="train", model="snn", hparams='{"width": 8}', run_dir=run_dir)
    before = content_digest(runs.model_path(run_dir, "teacher")), io.read_json(runs.record_path(run_dir, "teacher"))
    full_disk()
    with pytest.raises(SwtfError, match=re.escape(f"{runs.model_path(run_dir, 'teacher')}: No space left")):
        run_mode(train_mode, mode="train", model="snn", hparams='{"width": 8}', run_dir=run_dir, seed=1)
    after = content_digest(runs.model_path(run_dir, "teacher")), io.read_json(runs.record_path(run_dir, "teacher"))
    assert after == before and not temporaries(run_dir)


@pytest.fixture
def two_model_run(tmp_path):
    """A run with two untrained snn models, "a" and "b"."""
    run_dir = str(tmp_path / "run")
    for seed, name in enumerate(("a", "b")):
        runs.save_trained(run_dir, name, tiny_model(seed), {})
    return run_dir


def test_a_full_disk_in_certify_keeps_the_models_already_written(two_model_run, full_disk):
    full_disk(after=2)  # a.csv and a.json are written, b.csv is not
    with pytest.raises(SwtfError, match="free space"):
        run_mode(certify_mode, mode="certify", run_dir=two_model_run, num_points=3)
    folder = os.path.join(two_model_run, "certify")
    assert sorted(os.listdir(folder)) == ["a.csv", "a.json"]
    assert len(io.read_json(os.path.join(folder, "a.json"))["points"]) == 3


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=oct)
def test_artifacts_get_the_mode_of_a_plain_open_not_owner_only(tmp_path, umask):
    previous = os.umask(umask)
    try:
        io.write_json(str(tmp_path / "record.json"), {})
        checkpoints.save_model(tiny_model(), str(tmp_path / "model.keras"))
    finally:
        os.umask(previous)
    for name in ("record.json", "model.keras"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask


def test_a_run_directory_that_cannot_be_created_is_one_line(tmp_path):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("")
    result = swtf_cli("--mode=train", f"--run_dir={in_the_way}/run", "--epochs=1", "--train_limit=200")
    assert_one_line_error(result, f"cannot write {in_the_way}/run")
    assert "choose a writable --run_dir" in result.stderr


def test_a_read_only_run_directory_is_one_line_even_for_report(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        if os.access(run_dir, os.W_OK):
            pytest.skip("this user ignores file permissions (root with CAP_DAC_OVERRIDE)")
        result = swtf_cli("--mode=report", f"--run_dir={run_dir}")
    finally:
        run_dir.chmod(0o755)
    assert_one_line_error(result, f"cannot write {run_dir}/flags_report.cfg: Permission denied")
    assert "choose a writable --run_dir" in result.stderr


def test_a_missing_run_directory_is_named_and_not_created(tmp_path):
    missing = tmp_path / "missing"
    result = swtf_cli("--mode=certify", f"--run_dir={missing}", "--num_points=2")
    assert_one_line_error(result, f"run directory {missing} does not exist; train a model first")
    assert not missing.exists()


@pytest.mark.parametrize("mode,options,reads_run", [
    ("certify", dict(model_path=None), True), ("certify", dict(model_path="m.keras"), False),
    ("distill", dict(teacher_path=None), True), ("distill", dict(teacher_path="t.keras"), False),
    ("search", dict(teacher_path=None), True), ("attack", {}, True), ("prune", {}, True), ("export", {}, True),
    ("report", {}, True), ("train", {}, False), ("study", {}, False), ("verify", {}, False),
])
def test_only_modes_that_read_the_run_need_it_to_exist(tmp_path, mode, options, reads_run):
    config = types.SimpleNamespace(mode=mode, run_dir=str(tmp_path / "missing"),
                                   options=types.SimpleNamespace(**options))
    if reads_run:
        with pytest.raises(SwtfError, match="does not exist"):
            modes.check_run_exists(config)
    else:
        modes.check_run_exists(config)
    config.run_dir = str(tmp_path)
    modes.check_run_exists(config)


# --- corrupt model files and records -----------------------------------------------------------------------

def test_a_corrupt_or_incomplete_model_record_under_report_is_one_line(tmp_path):
    run_dir = str(tmp_path)
    runs.save_trained(run_dir, "teacher", tiny_model(), {})
    record = runs.record_path(run_dir, "teacher")
    with open(record) as f:
        text = f.read()
    with open(record, "w") as f:
        f.write(text[: len(text) // 2])
    with pytest.raises(SwtfError, match=re.escape(f"{record} is corrupt or truncated")) as err:
        run_mode(report_mode, mode="report", run_dir=run_dir)
    assert "\n" not in str(err.value)
    with open(record, "w") as f:
        json.dump({"name": "teacher"}, f)
    with pytest.raises(SwtfError, match=re.escape(f"{record} is not a complete model record")):
        run_mode(report_mode, mode="report", run_dir=run_dir)


@pytest.mark.parametrize("damage,fragment", [
    (lambda data: data[: len(data) // 2], "is not a Keras .keras archive"),
    (lambda data: data[: len(data) // 3] + b"\x5a" * 200 + data[len(data) // 3 + 200:], "retrain it or restore"),
])
def test_a_truncated_or_damaged_model_file_is_one_line(tmp_path, damage, fragment):
    path = str(tmp_path / "model.keras")
    checkpoints.save_model(tiny_model(), path)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(damage(data))
    with pytest.raises(SwtfError, match=re.escape(fragment)) as err:
        checkpoints.load_model(path)
    assert path in str(err.value) and "\n" not in str(err.value)


def test_certify_writes_the_other_models_before_failing_on_a_corrupt_one(two_model_run):
    with open(runs.model_path(two_model_run, "a"), "wb") as f:
        f.write(b"PK\x03\x04 not a model")
    with pytest.raises(SwtfError, match=re.escape(runs.model_path(two_model_run, "a"))) as err:
        run_mode(certify_mode, mode="certify", run_dir=two_model_run, num_points=3)
    assert "the other models' results are in" in str(err.value)
    folder = os.path.join(two_model_run, "certify")
    assert len(io.read_json(os.path.join(folder, "b.json"))["points"]) == 3
    summary = io.read_json(os.path.join(folder, "summary.json"))
    assert list(summary["models"]) == ["b"] and list(summary["not_loaded"]) == ["a"]


def test_certifying_only_an_uncertifiable_model_fails_saying_why(tmp_path):
    path = str(tmp_path / "elu.keras")
    checkpoints.save_model(models.LayerStack([keras.layers.Flatten(), keras.layers.Dense(8, activation="elu"),
                                              keras.layers.Dense(10)], (8, 8, 1)), path)
    with pytest.raises(SwtfError, match="no model was certified: elu is not certifiable: .*'elu'"):
        run_mode(certify_mode, mode="certify", run_dir=str(tmp_path / "run"), model_path=path, num_points=2)
    assert not os.path.exists(tmp_path / "run" / "certify" / "summary.json")


# --- the study's cache and fault injection -----------------------------------------------------------------

def model_stages(calls):
    """Stage "write" trains model "m" (seed 0); stage "read" loads it."""
    def train():
        calls.append("train")
        return tiny_model(), {}

    def write(context):
        calls.append("write")
        context.model("m", train)
        return "wrote m"

    def read(context):
        calls.append("read")
        runs.load_trained(context.config.run_dir, "m")
        return "read m"

    return [pipeline.Stage("write", (), lambda config: {}, write),
            pipeline.Stage("read", ("write",), lambda config: {}, read)]


def test_a_replaced_or_damaged_model_reruns_the_stages_that_read_it(tmp_path):
    config, calls = types.SimpleNamespace(run_dir=str(tmp_path), quiet=True), []
    path = runs.model_path(str(tmp_path), "m")

    def rerun():
        calls.clear()
        pipeline.run_pipeline(model_stages(calls), config, None, log=lambda line: None)
        return list(calls)

    assert rerun() == ["write", "train", "read"]
    assert rerun() == []
    checkpoints.save_model(tiny_model(seed=1), path)  # replaced by another model: it is kept and read again
    replacement = content_digest(path)
    assert rerun() == ["write", "read"] and content_digest(path) == replacement
    with open(path, "wb") as f:
        f.write(b"damaged")
    assert rerun() == ["write", "train", "read"]  # a damaged model is retrained
    checkpoints.load_model(path)
    assert rerun() == []


def artifact_stages(calls):
    """Three chained stages, each writing `out/<stage>.json` from its setting and its upstream's artifact."""
    def runner(name, upstream):
        def run(context):
            calls.append(name)
            before = io.read_json(os.path.join(context.config.run_dir, "out", f"{upstream}.json")) if upstream else {}
            io.write_json(os.path.join(context.config.run_dir, "out", f"{name}.json"),
                          {"stage": name, "x": context.config.x, "upstream": before})
            return f"{name} done"
        return run

    return [pipeline.Stage("a", (), lambda config: {"x": config.x}, runner("a", None)),
            pipeline.Stage("b", ("a",), lambda config: {}, runner("b", "a")),
            pipeline.Stage("c", ("b",), lambda config: {}, runner("c", "b"))]


@pytest.mark.parametrize("writes_before_full", range(6))  # each stage writes its artifact, then its marker
def test_a_full_disk_in_any_stage_keeps_finished_stages_and_a_rerun_completes(tmp_path, monkeypatch, full_disk,
                                                                              writes_before_full):
    reference = types.SimpleNamespace(run_dir=str(tmp_path / "reference"), quiet=True, x=3)
    pipeline.run_pipeline(artifact_stages([]), reference, None, log=lambda line: None)
    faulty, calls = types.SimpleNamespace(run_dir=str(tmp_path / "faulty"), quiet=True, x=3), []
    full_disk(after=writes_before_full)
    with pytest.raises(SwtfError, match="No space left .*free space"):
        pipeline.run_pipeline(artifact_stages(calls), faulty, None, log=lambda line: None)
    monkeypatch.undo()
    finished = StageLedger(faulty.run_dir).summaries()
    assert len(finished) == writes_before_full // 2 and not temporaries(faulty.run_dir)
    for path in json_files(faulty.run_dir):
        io.read_json(path)  # every artifact left behind is complete

    calls.clear()
    pipeline.run_pipeline(artifact_stages(calls), faulty, None, log=lambda line: None)
    assert calls == ["a", "b", "c"][len(finished):]
    for name in ("a", "b", "c"):
        assert (io.read_json(os.path.join(faulty.run_dir, "out", f"{name}.json"))
                == io.read_json(os.path.join(reference.run_dir, "out", f"{name}.json")))


# --- radii ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module,flag_values,fragment", [
    (certify_mode, dict(eps=1e9), "--eps must be a finite radius in (0, 1] (L-inf"),
    (certify_mode, dict(eps=0.0), "--eps must be a finite radius in (0, 1]"),
    (certify_mode, dict(eps=float("inf"), norm="l2"), "--eps must be a finite radius in (0, inf) (L2)"),
    (certify_mode, dict(max_radius=2.0), "--max_radius must be a finite radius in (0, 1]"),
    (study_mode, dict(study_eps=1e9), "--study_eps must be a finite radius in (0, 1]"),
    (study_mode, dict(study_eps_grid=["0", "1.5"]), "--study_eps_grid must be a finite radius in [0, 1]"),
    (study_mode, dict(study_max_radius=5.0), "--study_max_radius must be a finite radius in (0, 1]"),
    (attack_mode, dict(attack_eps=["0", "1e9"]), "--attack_eps must be a finite radius in [0, 1]"),
    (attack_mode, dict(attack_eps=["-1"], attack_norm="l2"), "--attack_eps must be a finite radius in [0, inf)"),
    (train_mode, dict(training="pgd", train_eps=1e9), "--train_eps must be a finite radius in (0, 1]"),
])
def test_radii_outside_the_input_box_are_refused_naming_the_flag(module, flag_values, fragment):
    with flagsaver.flagsaver(**flag_values):
        with pytest.raises(SwtfError, match=re.escape(fragment)) as err:
            module.options_from_flags(FLAGS)
    assert "\n" not in str(err.value)


def test_an_l2_radius_may_exceed_one():
    with flagsaver.flagsaver(eps=3.0, norm="l2", max_radius=8.0):
        assert certify_mode.options_from_flags(FLAGS).eps == 3.0


def test_an_out_of_range_radius_on_the_command_line_is_one_line(tmp_path):
    result = swtf_cli("--study_eps=1e9", f"--run_dir={tmp_path}")
    assert_one_line_error(result, "--study_eps must be a finite radius in (0, 1]")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real full disk: `mount(size_kb)` mounts a tmpfs of that size (needs root) and returns its path."""
    mounted = []

    def mount(size_kb):
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode:
            pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer tests cover the same code")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_a_real_full_disk_in_train_and_certify_is_one_line_and_keeps_the_model(tmp_path, tiny_disk):
    """train on a 12 KB disk fails naming the model file; certify on a disk the model just fits keeps it."""
    disk = tiny_disk(12)
    assert_one_line_error(swtf_cli("--mode=train", "--epochs=1", "--train_limit=300", "--quiet",
                                   f"--run_dir={disk}/run"), "No space left on device")
    assert not [name for name in os.listdir(disk / "run" / "models") if not io.is_temporary(name)]
    trained = tmp_path / "trained"
    assert swtf_cli("--mode=train", "--model=snn", '--hparams={"width": 16}', "--epochs=1", "--train_limit=300",
                    "--quiet", f"--run_dir={trained}").returncode == 0
    model_file = trained / "models" / "teacher.keras"
    disk = tiny_disk(model_file.stat().st_size // 1024 + 12)
    shutil.copytree(trained / "models", disk / "run" / "models")
    result = swtf_cli("--mode=certify", "--num_points=20", "--quiet", f"--run_dir={disk}/run")
    assert_one_line_error(result, "No space left on device")
    assert content_digest(str(disk / "run" / "models" / "teacher.keras")) == content_digest(str(model_file))


_KILLED_PIPELINE = """
import os, signal, sys, types
from swtf.study import pipeline
from tests.io_failures_test import artifact_stages

fsyncs, real_fsync = [], os.fsync
def fsync(fd):  # kill -9 after the first n files were written in full, in the middle of the next write
    fsyncs.append(fd)
    if len(fsyncs) > int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
pipeline.run_pipeline(artifact_stages([]), types.SimpleNamespace(run_dir=sys.argv[1], quiet=True, x=3), None,
                      log=lambda line: None)
"""


@pytest.mark.parametrize("writes_before_kill", range(6))  # each stage writes its artifact, then its marker
def test_kill_9_in_any_stage_keeps_finished_stages_and_a_rerun_completes(tmp_path, writes_before_kill):
    """SIGKILL in the middle of each write of each stage (a subprocess, killed from inside its fsync): the
    artifacts already written parse, finished stages stay finished, and a rerun reaches the uninterrupted run's
    artifacts running only the stages that had not finished."""
    reference = types.SimpleNamespace(run_dir=str(tmp_path / "reference"), quiet=True, x=3)
    pipeline.run_pipeline(artifact_stages([]), reference, None, log=lambda line: None)
    killed = types.SimpleNamespace(run_dir=str(tmp_path / "killed"), quiet=True, x=3)
    done = subprocess.run([sys.executable, "-c", _KILLED_PIPELINE, killed.run_dir, str(writes_before_kill)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    finished = StageLedger(killed.run_dir).summaries()
    assert len(finished) == writes_before_kill // 2
    for path in json_files(killed.run_dir):
        io.read_json(path)  # what a killed write leaves is a temporary, never a half-written artifact
    calls = []
    pipeline.run_pipeline(artifact_stages(calls), killed, None, log=lambda line: None)
    assert calls == ["a", "b", "c"][len(finished):]
    for name in ("a", "b", "c"):
        assert (io.read_json(os.path.join(killed.run_dir, "out", f"{name}.json"))
                == io.read_json(os.path.join(reference.run_dir, "out", f"{name}.json")))
