"""The Ray engine on a local cluster on loopback with 2 worker CPUs: a sharded digits certification run
through the CLI equals the in-process one exactly; a worker that dies is retried; task errors stay one line.

Needs Ray (`pip install 'swtf[ray]'`); CI installs it from requirements.txt.
"""

import os
import shutil
import subprocess
import sys

import pytest
import ray
from absl import flags
from absl.testing import flagsaver

from swtf import config as config_lib
from swtf import io, models, runs, train
from swtf.data import load_dataset
from swtf.distribute import ray_engine
from swtf.errors import SwtfError
from swtf.modes import certify as certify_mode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINTS = 20
TIMING = ("seconds", "certify_seconds")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray head on 127.0.0.1 with 2 CPUs; yields its address and shuts it down."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test file
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ray_run"))
    data = load_dataset("digits", seed=0)
    teacher = models.build("snn", data.input_shape, data.num_classes, seed=0, width=16)
    train.fit(teacher, (data.x_train, data.y_train), (data.x_val, data.y_val),
              options=train.TrainOptions(epochs=3, learning_rate=1e-2, seed=0), quiet=True)
    runs.save_trained(folder, "teacher", teacher, {})
    return folder


def without_timing(row):
    return {key: value for key, value in row.items() if key not in TIMING}


def test_sharded_certification_on_ray_equals_in_process(cluster, trained_run, tmp_path):
    split = str(tmp_path / "split")
    shutil.copytree(trained_run, split)
    with flagsaver.flagsaver(mode="certify", dataset="digits", quiet=True, run_dir=trained_run, num_points=POINTS):
        certify_mode.run(config_lib.config_from_flags(flags.FLAGS, certify_mode.options_from_flags(flags.FLAGS)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "swtf.main", "--mode=certify", f"--run_dir={split}", "--quiet",
                             f"--num_points={POINTS}", "--num_shards=2", "--engine=ray", f"--ray_address={cluster}"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "certify: shard 2/2" in result.stdout and "certify: shard 1/2" in result.stdout
    expected, merged = (io.read_json(os.path.join(run, "certify", "teacher.json")) for run in (trained_run, split))
    assert [without_timing(r) for r in merged["points"]] == [without_timing(r) for r in expected["points"]]
    assert without_timing(merged["summary"]) == without_timing(expected["summary"])
    assert sum(row["radius"] > 0 for row in merged["points"]) >= 3


def die_on_first_attempt(marker):
    """Kills its worker process the first time (no marker yet), returns the worker's pid the second time."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return os.getpid()


def refuse(value):
    raise SwtfError(f"bad value {value}; pass a good one")


def test_a_lost_worker_is_retried_and_task_errors_stay_one_line(cluster, tmp_path):
    marker = str(tmp_path / "died_once")
    (pid,) = ray_engine.run_tasks(die_on_first_attempt, [(marker,)], address=cluster, max_retries=1)
    assert os.path.exists(marker) and pid != os.getpid()
    with pytest.raises(SwtfError, match="a Ray worker died"):
        ray_engine.run_tasks(die_on_first_attempt, [(str(tmp_path / "never"),)], address=cluster, max_retries=0)
    with pytest.raises(SwtfError) as err:
        ray_engine.run_tasks(refuse, [(3,)], address=cluster, max_retries=0)
    assert str(err.value) == "bad value 3; pass a good one"
