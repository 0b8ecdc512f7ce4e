"""The factors study: sweep syntax, members, temperature selection per group, summaries and plots."""

import math
import os

import numpy as np
import pytest

from swtf import data as datasets
from swtf import models, train
from swtf.distill import plots, study, sweep, trainer
from swtf.errors import SwtfError


def test_parse_sweep_crosses_keys_and_reads_tuples():
    students = sweep.parse_sweep("snn:width=32,128; scnn2:filters=8-16,32-64:dense=none,64")
    assert students == [
        ("snn", (("width", 32),)), ("snn", (("width", 128),)),
        ("scnn2", (("dense", ()), ("filters", (8, 16)))), ("scnn2", (("dense", 64), ("filters", (8, 16)))),
        ("scnn2", (("dense", ()), ("filters", (32, 64)))), ("scnn2", (("dense", 64), ("filters", (32, 64)))),
    ]
    assert sweep.student_label(*students[3]) == "scnn2:dense=64:filters=8-16"
    assert sweep.parse_sweep("scnn1") == [("scnn1", ())]


@pytest.mark.parametrize("text,match", [("cifar_cnn:filters=8", "not a student"), ("snn:width", "key=v1,v2"),
                                        ("snn:width=a", "not a number"), ("", "no student"),
                                        ("snn:width=8:width=9", "key=v1,v2")])
def test_parse_sweep_refuses_bad_text(text, match):
    with pytest.raises(SwtfError, match=match):
        sweep.parse_sweep(text)


def test_expand_sweep_gives_temperatures_to_temperature_methods_only():
    members = sweep.expand_sweep([("snn", (("width", 8),))], ["labels", "soft_targets"], [1.0, 4.0], [0, 1])
    assert len(members) == 2 * (1 + 2)
    assert {(m.method, m.temperature) for m in members} == {("labels", None), ("soft_targets", 1.0),
                                                          ("soft_targets", 4.0)}
    assert {m.seed for m in members} == {0, 1}
    with pytest.raises(SwtfError, match="--temperatures"):
        sweep.expand_sweep([("snn", ())], ["hinton"], [], [0])
    with pytest.raises(SwtfError, match="methods"):
        sweep.expand_sweep([("snn", ())], ["dark"], [1.0], [0])


def row(method, temperature, seed, val, test):
    return {"student": "snn:width=8", "architecture": "snn", "params": 100, "method": method,
            "temperature": temperature, "seed": seed, "val_accuracy": val, "test_accuracy": test,
            "teacher_agreement": val}


def test_mark_selected_picks_validation_best_temperature_per_seed():
    rows = [row("soft_targets", 1.0, 0, 0.8, 0.9), row("soft_targets", 4.0, 0, 0.9, 0.1),
            row("soft_targets", 1.0, 1, 0.7, 0.2), row("soft_targets", 4.0, 1, 0.6, 0.9),
            row("labels", None, 0, 0.5, 0.5)]
    selected = [r["selected"] for r in study.mark_selected(rows)]
    assert selected == [False, True, True, False, True]


def test_summarise_is_mean_and_sample_std_over_seeds():
    rows = [row("logits", None, s, v, t) for s, v, t in [(0, 0.8, 0.7), (1, 0.9, 0.8), (2, 0.7, 0.9)]]
    (entry,) = study.summarise(rows)
    assert entry["seeds"] == 3 and entry["temperature_mean"] is None
    assert entry["test_accuracy_mean"] == pytest.approx(0.8)
    assert entry["test_accuracy_std"] == pytest.approx(math.sqrt(((0.1 ** 2) * 2) / 2))
    by_temperature = study.summarise([row("hinton", 2.0, 0, 0.5, 0.5), row("hinton", 4.0, 0, 0.6, 0.4)],
                                     by=("student", "method", "temperature"))
    assert [e["test_accuracy_std"] for e in by_temperature] == [0.0, 0.0]


def test_run_member_trains_the_named_student_and_plots(tmp_path):
    digits = datasets.load_dataset("digits", seed=0)
    options = train.TrainOptions(epochs=3, batch_size=64, patience=3, seed=0)
    teacher = models.build("snn", digits.input_shape, digits.num_classes, seed=0, width=64)
    train.fit(teacher, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options, quiet=True)
    context = study.StudyContext(digits, trainer.teacher_targets(teacher, digits), trainer.DistillSpec(), options)
    students = sweep.parse_sweep("snn:width=8,16")
    params = study.check_students(students, digits)
    widths = [s[1][0][1] for s in students]
    # 8x8 inputs -> width hidden (64w + w) -> 10 logits (10w + 10)
    assert list(params.values()) == [64 * w + w + 10 * w + 10 for w in widths]
    members = sweep.expand_sweep(students, ["labels", "soft_targets"], [1.0, 3.0], [0])
    rows = study.mark_selected([study.run_member(m, context) for m in members])
    assert [r["params"] for r in rows] == [params[(m.architecture, m.hparams)] for m in members]
    assert all(set(study.ROW_FIELDS) <= set(r) for r in rows)
    summary = study.summarise([r for r in rows if r["selected"]])
    assert len(summary) == 4 and all(set(study.SUMMARY_FIELDS) <= set(e) for e in summary)
    # The same member twice gives the same row: seeds fix initial weights and shuffling.
    again = study.run_member(members[0], context)
    assert again["val_accuracy"] == rows[0]["val_accuracy"] and again["best_epoch"] == rows[0]["best_epoch"]

    png = plots.accuracy_against_params(summary, str(tmp_path / "p.png"), teacher_accuracy=0.9)
    by_t = study.summarise([r for r in rows if r["temperature"] is not None], by=("student", "method", "temperature"))
    png_t = plots.accuracy_against_temperature(by_t, str(tmp_path / "t.png"))
    for path in (png, png_t):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 5000


def test_check_students_refuses_bad_hparams():
    digits = datasets.load_dataset("digits", seed=0)
    with pytest.raises(SwtfError, match="snn"):
        study.check_students([("snn", (("depth", 3),))], digits)
    assert np.isfinite(study.check_students([("snn", ())], digits)[("snn", ())])
