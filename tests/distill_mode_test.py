"""`--mode=distill` end to end in-process: flags -> options, one student, temperature ranging, a sweep."""

import os

import pytest
from absl import flags
from absl.testing import flagsaver

from swtf import config as config_lib
from swtf import io, models, runs, train
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.modes import distill as distill_mode

FLAGS = flags.FLAGS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run whose teacher is a quickly trained snn on digits."""
    folder = str(tmp_path_factory.mktemp("run"))
    data = load_dataset("digits")
    teacher = models.build("snn", data.input_shape, data.num_classes, seed=0, width=64)
    train.fit(teacher, (data.x_train, data.y_train), (data.x_val, data.y_val),
              options=train.TrainOptions(epochs=10, seed=0), quiet=True)
    runs.save_trained(folder, "teacher", teacher, {})
    return folder


def run_mode(**flag_values):
    flag_values = {"mode": "distill", "dataset": "digits", "epochs": 3, "quiet": True, **flag_values}
    with flagsaver.flagsaver(**flag_values):
        config = config_lib.config_from_flags(FLAGS, distill_mode.options_from_flags(FLAGS))
        distill_mode.run(config)
        return config


def test_one_student_is_saved_with_its_metrics(run_dir):
    run_mode(run_dir=run_dir, model="snn", hparams='{"width": 16}', distill_method="hinton", temperatures=["3"],
             transfer_data="augment:100", student_name="one")
    model, record = runs.load_trained(run_dir, "one")
    assert record["metrics"]["temperature"] == 3.0 and record["metrics"]["transfer_examples"] == 100
    assert record["params"] == models.count_params(model) == 64 * 16 + 16 + 16 * 10 + 10


def test_temperature_ranging_saves_the_validation_choice(run_dir):
    run_mode(run_dir=run_dir, model="snn", hparams='{"width": 16}', temperatures=["1", "5"], student_name="ranged")
    rows = io.read_json(os.path.join(run_dir, "distill", "ranged_temperatures.json"))
    _, record = runs.load_trained(run_dir, "ranged")
    best = max(rows, key=lambda r: r["val_accuracy"])  # first of ties, as max() keeps the first
    assert record["metrics"]["temperature"] == best["temperature"]


def test_sweep_writes_tables_and_plots(run_dir):
    run_mode(run_dir=run_dir, sweep="snn:width=8", sweep_methods=["labels", "soft_targets"],
             temperatures=["1", "4"], seeds=["0", "1"], epochs=2)
    summary = io.read_json(os.path.join(run_dir, "distill", "study_summary.json"))
    rows = io.read_json(os.path.join(run_dir, "distill", "study_rows.json"))
    assert len(rows) == 2 * (1 + 2) and len(summary) == 2  # seeds x (labels + 2 temperatures); methods
    assert all(entry["seeds"] == 2 for entry in summary)
    for name in ("distill_accuracy_vs_params.png", "distill_accuracy_vs_temperature.png"):
        assert os.path.getsize(os.path.join(run_dir, "plots", name)) > 5000


@pytest.mark.parametrize("flag_values,match", [
    (dict(temperatures=["hot"]), "--temperatures"),
    (dict(temperatures=["-1"]), "temperature"),
    (dict(seeds=["x"]), "--seeds"),
    (dict(sweep="mlp:width=3"), "not a student"),
    (dict(sweep="snn:width=3", sweep_methods=["magic"]), "methods"),
    (dict(transfer_data="augment:zero"), "--transfer_data"),
    (dict(student_name="a/b"), "--student_name"),
    (dict(alpha=2.0), "alpha"),
])
def test_bad_flags_are_one_line_errors(flag_values, match):
    with flagsaver.flagsaver(**flag_values), pytest.raises(SwtfError, match=match) as err:
        distill_mode.options_from_flags(FLAGS)
    assert "\n" not in str(err.value)


def test_teacher_of_another_input_shape_is_refused(run_dir, tmp_path):
    other = models.build("snn", (4, 4, 1), 10, width=4)
    runs.save_trained(str(tmp_path), "teacher", other, {})
    with pytest.raises(SwtfError, match="teacher takes inputs"):
        run_mode(run_dir=str(tmp_path), model="snn")
