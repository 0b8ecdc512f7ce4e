"""The whole study through the CLI: a run killed mid-stage leaves only complete artifacts, resumes and ends
with the same metrics as an uninterrupted run with the same seed; a rerun is served from the cache."""

import json
import os
import signal
import subprocess
import sys
import time

from swtf import checkpoints, io
from swtf.modes import study as study_mode
from tests.cli_helpers import REPO, swtf_cli

SMALL_STUDY = ["--epochs=6", "--patience=3", "--study_points=30", "--study_students=snn:width=16;shallow_cnn:filters=4",
               "--study_temperatures=1,4", "--study_seeds=0", "--study_attack_seeds=0", "--study_apgd_steps=10",
               "--study_eps_grid=0,0.1", "--attack_steps=5",
               "--robust_warmup_epochs=1", "--robust_ramp_epochs=3", "--study_prune_steps=1", "--quiet"]
VOLATILE = ("train_seconds", "seconds", "finished_at", "run_dir", "created", "command")  # provenance: when, how called


def _stable(value):
    """The metrics without wall-clock times and paths, which legitimately differ between runs."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return _stable(json.load(f))


def assert_only_complete_artifacts(run_dir):
    """Every JSON artifact parses and every model loads; the only unfinished files are atomic-writer
    temporaries, which no reader mistakes for artifacts."""
    for root, _, names in os.walk(run_dir):
        for name in names:
            if name.endswith(".json") and not io.is_temporary(name):
                io.read_json(os.path.join(root, name))
            if name.endswith(".keras") and not io.is_temporary(name):
                checkpoints.load_model(os.path.join(root, name))


def test_killed_study_resumes_to_the_same_metrics_and_reruns_from_cache(tmp_path):
    reference = str(tmp_path / "reference")
    result = swtf_cli(*SMALL_STUDY, f"--run_dir={reference}")
    assert result.returncode == 0, result.stderr
    assert "verdict:" in result.stdout and os.path.isfile(os.path.join(reference, "report.html"))

    interrupted = str(tmp_path / "interrupted")
    process = subprocess.Popen([sys.executable, "-m", "swtf.main", *SMALL_STUDY, f"--run_dir={interrupted}"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_student = os.path.join(interrupted, "models", "student-snn-width-16-logits.json")
    deadline = time.time() + 300
    while not os.path.isfile(first_student) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-way through the students stage
    process.wait()
    stages = os.listdir(os.path.join(interrupted, "stages"))
    assert "teacher.json" in stages and "students.json" not in stages
    assert_only_complete_artifacts(interrupted)
    for half_written in ("stages/.tmp-killed.json", "models/.tmp-killed.json", "models/.tmp-killed.keras"):
        with open(os.path.join(interrupted, half_written), "w") as f:  # as a kill mid-write leaves them
            f.write('{"stage": "stud')

    resumed = swtf_cli(*SMALL_STUDY, f"--run_dir={interrupted}")
    assert resumed.returncode == 0, resumed.stderr
    assert "study: teacher: cached" in resumed.stdout and "study: students: cached" not in resumed.stdout
    assert _metrics(interrupted)["verdicts"] == _metrics(reference)["verdicts"]
    assert _metrics(interrupted) == _metrics(reference)

    rerun = swtf_cli(*SMALL_STUDY, f"--run_dir={reference}")
    assert rerun.returncode == 0 and rerun.stdout.count(": cached (") == len(study_mode.STAGES), rerun.stdout
