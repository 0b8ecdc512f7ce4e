"""The command line as a user meets it: help, bad input (one line, exit 2), train, export and reload."""

import os

import numpy as np
import pytest
import tensorflow as tf

from swtf import checkpoints, modes, runs
from swtf.errors import SwtfError
from tests.cli_helpers import swtf_cli, assert_one_line_error



def test_helpfull_lists_the_common_flags():
    result = swtf_cli("--helpfull")
    assert result.returncode == 0
    for flag in ("--mode", "--dataset", "--data_dir", "--run_dir", "--seed", "--[no]quiet", "--flagfile"):
        assert flag in result.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--bogus_flag=1"], "Unknown command line flag 'bogus_flag'"),
    (["--epochs=many"], "--epochs=many"),
    (["--mode=dance"], "--mode"),
    (["--flagfile=/no/such/flags.cfg"], "flagfile"),
    (["--mode=train", "--dataset=imagenet"], "unknown data set 'imagenet'"),
    (["--mode=train", "--dataset=npz:/no/such/data.npz"], "not found"),
    (["--mode=train", "--hparams={width: 3"], "--hparams must be a JSON object"),
    (["--mode=train", "--learning_rate=-0.1"], "learning_rate"),
    (["--mode=export", "--run_dir=/nonexistent/swtf-missing-run"], "/nonexistent/swtf-missing-run does not exist"),
    (["--mode=train", "stray_argument"], "unexpected arguments"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, fragment):
    assert_one_line_error(swtf_cli(*args), fragment)


def test_malformed_flagfile_is_one_line_and_exit_code_2(tmp_path):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text("--epochs=3\n--no_such_flag=4\n")
    assert_one_line_error(swtf_cli(f"--flagfile={flagfile}"), "no_such_flag")


def test_shipped_flagfiles_parse():
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "svhn", "thesis_cifar10"):
        result = swtf_cli(f"--flagfile=flags/{name}.cfg", "--mode=dance")  # stops right after parsing
        assert "--mode" in result.stderr and "Unknown command line flag" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    result = swtf_cli("--mode=train", "--model=snn", '--hparams={"width": 16}', "--epochs=2", "--quiet",
                      f"--run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_train_writes_model_record_effective_flags_and_tensorboard_logs(trained_run):
    run_dir, result = trained_run
    assert "train: teacher (snn, 1,210 parameters)" in result.stdout
    _, record = runs.load_trained(run_dir, "teacher")
    assert record["params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert 0.0 < record["metrics"]["test_accuracy"] <= 1.0
    flags_text = open(os.path.join(run_dir, "flags_train.cfg")).read()
    assert "--epochs=2" in flags_text and "--model=snn" in flags_text
    assert os.listdir(os.path.join(run_dir, "logs", "teacher"))


def test_export_writes_a_savedmodel_that_reloads_with_identical_logits(trained_run, tmp_path):
    run_dir, _ = trained_run
    export_dir = str(tmp_path / "exported")
    result = swtf_cli("--mode=export", f"--run_dir={run_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr
    model = checkpoints.load_model(runs.model_path(run_dir, "teacher"))
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    loaded = tf.saved_model.load(export_dir)
    logits = loaded.signatures["serving_default"](images=tf.constant(x))["logits"].numpy()
    np.testing.assert_array_equal(logits, np.asarray(model(x, training=False)))


def test_seeded_cli_training_twice_gives_identical_weights(trained_run, tmp_path):
    run_dir, _ = trained_run
    other = str(tmp_path / "again")
    result = swtf_cli("--mode=train", "--model=snn", '--hparams={"width": 16}', "--epochs=2", "--quiet",
                      f"--run_dir={other}")
    assert result.returncode == 0, result.stderr
    first = checkpoints.load_model(runs.model_path(run_dir, "teacher")).get_weights()
    second = checkpoints.load_model(runs.model_path(other, "teacher")).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_corrupt_checkpoint_and_nan_weights_are_refused(trained_run, tmp_path):
    run_dir, _ = trained_run
    corrupt_run = tmp_path / "corrupt"
    (corrupt_run / "models").mkdir(parents=True)
    (corrupt_run / "models" / "teacher.keras").write_bytes(b"\x00garbage")
    (corrupt_run / "models" / "teacher.json").write_text("{}")
    assert_one_line_error(swtf_cli("--mode=export", f"--run_dir={corrupt_run}"), "not a Keras .keras archive")

    model = checkpoints.load_model(runs.model_path(run_dir, "teacher"))
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    nan_path = str(tmp_path / "nan.keras")
    model.save(nan_path)
    with pytest.raises(SwtfError, match="NaN"):
        checkpoints.load_model(nan_path)


def test_unbuilt_modes_say_so():
    with pytest.raises(SwtfError, match="--mode=verify is not built yet") as err:
        modes.module_for("verify", {"train": object()})
    assert "\n" not in str(err.value)
