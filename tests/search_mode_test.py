"""`--mode=search`: a 2-trial search completes, logs HParams and saves the best student; distributed mode."""

import glob
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver
from tensorboard.plugins.hparams import plugin_data_pb2

from swtf import config as config_lib
from swtf import io, models, runs, train
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.modes import search as search_mode

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_with_teacher(folder):
    data = load_dataset("digits")
    teacher = models.build("snn", data.input_shape, data.num_classes, seed=0, width=32)
    train.fit(teacher, (data.x_train, data.y_train), (data.x_val, data.y_val),
              options=train.TrainOptions(epochs=5, seed=0), quiet=True)
    runs.save_trained(folder, "teacher", teacher, {})
    return data


def run_mode(**flag_values):
    with flagsaver.flagsaver(mode="search", dataset="digits", epochs=2, quiet=True, **flag_values):
        config = config_lib.config_from_flags(FLAGS, search_mode.options_from_flags(FLAGS))
        search_mode.run(config)


def hparams_sessions(log_dir):
    """{trial_id: (hyper-parameters, last val_accuracy)} read back from the event files."""
    sessions = {}
    for trial_dir in sorted(glob.glob(os.path.join(log_dir, "*"))):
        values, val_accuracy = {}, None
        for path in glob.glob(os.path.join(trial_dir, "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                        for name, v in data.session_start_info.hparams.items():
                            values[name] = v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                    elif value.tag == "val_accuracy":
                        val_accuracy = float(tf.make_ndarray(value.tensor))
        sessions[os.path.basename(trial_dir)] = (values, val_accuracy)
    return sessions


def test_two_trial_search_saves_the_best_student_and_logs_hparams(tmp_path):
    folder = str(tmp_path)
    data = run_with_teacher(folder)
    run_mode(run_dir=folder, tuner="bayesian", max_trials=2, search_families=["snn", "scnn1"],
             temperatures=["1", "3"])
    trials = io.read_json(os.path.join(folder, "search", "bayesian_trials.json"))
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    model, record = runs.load_trained(folder, search_mode.BEST_NAME)
    best = max(trials, key=lambda t: t["val_accuracy"])
    assert record["metrics"]["trial_id"] == best["trial_id"]
    assert record["metrics"]["val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert train.accuracy(model, data.x_val, data.y_val) == pytest.approx(best["val_accuracy"])
    assert record["architecture"] == best["hyperparameters"]["family"]
    sessions = hparams_sessions(runs.logs_dir(folder, "search"))
    assert set(sessions) == {t["trial_id"] for t in trials}
    for trial in trials:
        values, last_val_accuracy = sessions[trial["trial_id"]]
        assert values["family"] == trial["hyperparameters"]["family"]
        assert values["temperature"] == trial["hyperparameters"]["temperature"]
        assert 0.0 <= last_val_accuracy <= trial["val_accuracy"] + 1e-6  # logged as float32


def test_hyperband_search_completes(tmp_path):
    folder = str(tmp_path)
    run_with_teacher(folder)
    run_mode(run_dir=folder, tuner="hyperband", search_families=["snn"])
    trials = io.read_json(os.path.join(folder, "search", "hyperband_trials.json"))
    assert len(trials) >= 2 and runs.list_trained(folder) == ["search_best", "teacher"]


def test_search_where_every_student_is_over_budget_is_an_error(tmp_path):
    folder = str(tmp_path)
    run_with_teacher(folder)
    with pytest.raises(SwtfError, match="max_params"):
        run_mode(run_dir=folder, max_trials=1, max_params=1, search_families=["snn"])


@pytest.mark.parametrize("flag_values,match", [(dict(max_trials=0), "--max_trials"),
                                               (dict(max_params=-5), "--max_params"),
                                               (dict(search_families=["vgg"]), "search families")])
def test_bad_search_flags_are_one_line_errors(flag_values, match):
    with flagsaver.flagsaver(**flag_values), pytest.raises(SwtfError, match=match):
        search_mode.options_from_flags(FLAGS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_with_a_chief_and_a_worker(tmp_path):
    folder = str(tmp_path)
    run_with_teacher(folder)
    args = [sys.executable, "-m", "swtf.main", "--mode=search", "--dataset=digits", f"--run_dir={folder}",
            "--tuner=bayesian", "--max_trials=2", "--epochs=2", "--search_families=snn", "--quiet"]
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERASTUNER_ORACLE_IP="127.0.0.1",
                KERASTUNER_ORACLE_PORT=str(free_port()))
    chief = subprocess.Popen(args, env=dict(base, KERASTUNER_TUNER_ID="chief"), cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    worker = subprocess.Popen(args, env=dict(base, KERASTUNER_TUNER_ID="tuner0"), cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        worker_out, _ = worker.communicate(timeout=300)
        chief_out, _ = chief.communicate(timeout=120)
    finally:
        for process in (chief, worker):
            if process.poll() is None:
                process.kill()
    assert worker.returncode == 0, worker_out[-2000:]
    assert chief.returncode == 0, chief_out[-2000:]
    assert "worker tuner0 finished" in worker_out
    trials = io.read_json(os.path.join(folder, "search", "bayesian_trials.json"))
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    _, record = runs.load_trained(folder, search_mode.BEST_NAME)
    assert record["metrics"]["val_accuracy"] == pytest.approx(max(t["val_accuracy"] for t in trials))
