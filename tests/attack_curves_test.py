"""Robustness curves, their summary table and plot, checked against direct calls of the attacks."""

import csv
import json

import keras
import numpy as np
import pytest

import swtf.attack
from swtf.attack import curves, plots
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.models import build

EPS_GRID = (0.0, 0.05, 0.15)


def _trained(width, epochs, data):
    model = build("snn", data.input_shape, 10, width=width, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def digits_models():
    """Two small digits snns of different widths, and the first 100 test images."""
    data = load_dataset("digits")
    return {"wide": _trained(64, 6, data), "narrow": _trained(8, 3, data)}, data.x_test[:100], data.y_test[:100]


def test_curve_equals_direct_attacks_and_clean_accuracy(digits_models):
    models, x, y = digits_models
    model = models["wide"]
    curve = curves.robustness_curve(model, x, y, EPS_GRID, seeds=(0, 3), steps=5, restarts=2)
    clean = np.mean(np.argmax(np.asarray(model(x, training=False)), axis=1) == y)
    assert curve["eps"] == list(EPS_GRID) and curve["seeds"] == [0, 3] and curve["points"] == 100
    assert curve["accuracy"][0] == [clean, clean]
    for i, eps in enumerate(EPS_GRID[1:], start=1):
        assert curve["accuracy"][i] == [swtf.attack.robust_accuracy(model, x, y, eps, steps=5, restarts=2, seed=s)
                                        for s in (0, 3)]
    assert curve["accuracy"][2][0] < clean  # the attack does something at eps 0.15


def test_deterministic_attack_runs_once_and_equals_direct_call(digits_models):
    models, x, y = digits_models
    curve = curves.robustness_curve(models["wide"], x, y, (0.1,), attack="fgsm", norm="l2")
    assert curve["accuracy"] == [[swtf.attack.robust_accuracy(models["wide"], x, y, 0.1, attack="fgsm", norm="l2")]]
    with pytest.raises(SwtfError, match="no random start"):
        curves.robustness_curve(models["wide"], x, y, (0.1,), attack="bim", seeds=(0, 1))


def test_cleverhans_backend_scores_cleverhans_examples(digits_models):
    models, x, y = digits_models
    model = models["wide"]
    curve = curves.robustness_curve(model, x, y, (0.1,), seeds=(2,), backend="cleverhans", steps=5, restarts=1,
                                    loss="ce")
    x_adv = cleverhans_pgd(model, x, y, 0.1, steps=5, seed=2)
    assert curve["backend"] == "cleverhans"
    assert curve["accuracy"] == [[1.0 - np.mean(np.argmax(np.asarray(model(x_adv, training=False)), 1) != y)]]


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(attack="fgsm"), "runs only pgd"),
    (dict(restarts=3), "one random start"),
    (dict(loss="margin"), "cross-entropy"),
    (dict(decay=0.5), "takes no decay"),
])
def test_cleverhans_backend_refuses_what_it_cannot_do(digits_models, kwargs, fragment):
    models, x, y = digits_models
    with pytest.raises(SwtfError, match=fragment):
        curves.robustness_curve(models["wide"], x, y, (0.1,), backend="cleverhans", **kwargs)


def test_bad_arguments_raise_one_line_errors(digits_models):
    models, x, y = digits_models
    for kwargs, fragment in ((dict(backend="foolbox"), "backend"), (dict(attack="cw"), "attack"),
                             (dict(seed=1), "seeds="), (dict(seeds=()), "one seed")):
        with pytest.raises(SwtfError, match=fragment):
            curves.robustness_curve(models["wide"], x, y, (0.1,), **kwargs)
    with pytest.raises(SwtfError, match="eps"):
        curves.robustness_curve(models["wide"], x, y, (0.1, -0.1))


def test_curves_of_several_models_share_the_points(digits_models):
    models, x, y = digits_models
    several = curves.robustness_curves(models, x, y, (0.0, 0.1), steps=5)
    assert set(several) == {"wide", "narrow"}
    for name, model in models.items():
        assert several[name] == curves.robustness_curve(model, x, y, (0.0, 0.1), steps=5)
    assert several["wide"]["accuracy"] != several["narrow"]["accuracy"]


def _fake_curve(accuracy, eps=(0.0, 0.1)):
    return {"eps": list(eps), "seeds": list(range(len(accuracy[0]))), "points": 10, "accuracy": accuracy}


def test_summary_rows_by_hand():
    rows = curves.summary_rows({"m": _fake_curve([[0.9, 0.9, 0.9], [0.5, 0.7, 0.6]])})
    assert rows[0] == {"model": "m", "eps": 0.0, "mean": 0.9, "std": 0.0, "min": 0.9, "max": 0.9, "seeds": 3,
                       "points": 10}
    assert rows[1]["mean"] == pytest.approx(0.6) and rows[1]["min"] == 0.5 and rows[1]["max"] == 0.7
    assert rows[1]["std"] == pytest.approx(np.sqrt(0.02 / 3))


def test_write_curves_round_trips(tmp_path):
    several = {"a": _fake_curve([[0.9], [0.4]]), "b": _fake_curve([[0.8, 0.8], [0.3, 0.5]])}
    stem = str(tmp_path / "curves")
    rows = curves.write_curves(stem, several, dataset="digits")
    with open(stem + ".csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["model"], float(r["eps"]), float(r["mean"])) for r in table] == [
        ("a", 0.0, 0.9), ("a", 0.1, 0.4), ("b", 0.0, 0.8), ("b", 0.1, 0.4)]
    with open(stem + ".json") as f:
        saved = json.load(f)
    assert saved["dataset"] == "digits" and saved["curves"] == several and saved["summary"] == rows


def test_band_limits_by_hand():
    mean, low, high = plots.band_limits([[0.2, 0.4], [1.0, 1.0]], "minmax")
    np.testing.assert_allclose([mean, low, high], [[0.3, 1.0], [0.2, 1.0], [0.4, 1.0]])
    mean, low, high = plots.band_limits([[0.2, 0.4]], "std")
    np.testing.assert_allclose([low, high], [[0.2], [0.4]])


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "curves.png"
    plots.plot_robustness_curves({"a": _fake_curve([[0.9], [0.4]]), "b": _fake_curve([[0.8, 0.8], [0.3, 0.5]])},
                                 str(path), band="std", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SwtfError, match="band"):
        plots.plot_robustness_curves({}, str(path), band="iqr")
