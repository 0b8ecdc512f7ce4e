"""`--mode=attack` end to end: the CLI's curves equal the attacks called directly, on the same points."""

import csv
import json
import os
import types

import numpy as np
import pytest

import swtf.attack
from swtf import runs
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.modes import attack as attack_mode
from tests.cli_helpers import swtf_cli, assert_one_line_error

POINTS = 40
TRAIN = ("--mode=train", "--model=snn", '--hparams={"width": 16}', "--epochs=3", "--learning_rate=0.01", "--quiet")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with a standard-trained snn ('teacher') and a PGD-trained one ('robust'), both from the CLI."""
    path = str(tmp_path_factory.mktemp("attack_run"))
    for extra in ((), ("--model_name=robust", "--training=pgd", "--train_eps=0.1", "--train_eps_ramp_epochs=1",
                       "--train_pgd_steps=3")):
        result = swtf_cli(*TRAIN, f"--run_dir={path}", *extra)
        assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def points():
    data = load_dataset("digits", seed=0)
    return data.x_test[:POINTS], data.y_test[:POINTS]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pgd_curves_equal_robust_accuracy_called_directly(run_dir, points):
    result = swtf_cli("--mode=attack", f"--run_dir={run_dir}", f"--attack_points={POINTS}",
                      "--attack_eps=0.1,0,0.05", "--attack_seeds=0,1", "--attack_steps=5", "--quiet")
    assert result.returncode == 0, result.stderr
    x, y = points
    saved = json.load(open(os.path.join(run_dir, "attack", "curves.json")))
    assert set(saved["curves"]) == {"teacher", "robust"}
    for name, curve in saved["curves"].items():
        model, _ = runs.load_trained(run_dir, name)
        assert curve["eps"] == [0.0, 0.05, 0.1] and curve["seeds"] == [0, 1] and curve["points"] == POINTS
        clean = np.mean(np.argmax(np.asarray(model(x, training=False)), axis=1) == y)
        assert curve["accuracy"][0] == [pytest.approx(clean)] * 2
        for eps, per_seed in zip(curve["eps"][1:], curve["accuracy"][1:]):
            assert per_seed == [swtf.attack.robust_accuracy(model, x, y, eps, steps=5, restarts=1, seed=s)
                                for s in (0, 1)]
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"attack: {name} "))
        assert f"clean {clean:.3f}" in line and f"{POINTS} points, 2 seeds" in line
    rows = read_csv(os.path.join(run_dir, "attack", "curves.csv"))
    assert len(rows) == 6
    for row in rows:
        per_seed = saved["curves"][row["model"]]["accuracy"][saved["curves"][row["model"]]["eps"].index(
            float(row["eps"]))]
        assert float(row["mean"]) == pytest.approx(np.mean(per_seed))
        assert (float(row["min"]), float(row["max"])) == (min(per_seed), max(per_seed))
    with open(os.path.join(runs.plots_dir(run_dir), "attack_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cleverhans_backend_through_the_same_reporting(run_dir, points, tmp_path):
    result = swtf_cli("--mode=attack", f"--run_dir={run_dir}", f"--attack_points={POINTS}", "--attack_eps=0.1",
                      "--attack_seeds=3", "--attack_steps=4", "--attack_models=teacher", "--attack_backend=cleverhans",
                      "--quiet")
    assert result.returncode == 0, result.stderr
    x, y = points
    model, _ = runs.load_trained(run_dir, "teacher")
    curve = json.load(open(os.path.join(run_dir, "attack", "curves.json")))["curves"]["teacher"]
    assert curve["backend"] == "cleverhans" and curve["seeds"] == [3]
    x_adv = cleverhans_pgd(model, x, y, 0.1, steps=4, seed=3)
    assert curve["accuracy"] == [[1.0 - np.mean(swtf.attack.is_adversarial(model, x_adv, y))]]


def test_deterministic_attack_runs_once_in_l2(run_dir, points):
    result = swtf_cli("--mode=attack", f"--run_dir={run_dir}", f"--attack_points={POINTS}", "--attack_eps=0.5",
                      "--attack=fgsm", "--attack_norm=l2", "--attack_models=robust", "--quiet")
    assert result.returncode == 0, result.stderr
    x, y = points
    model, _ = runs.load_trained(run_dir, "robust")
    curve = json.load(open(os.path.join(run_dir, "attack", "curves.json")))["curves"]["robust"]
    assert curve["seeds"] == [0]
    assert curve["accuracy"] == [[swtf.attack.robust_accuracy(model, x, y, 0.5, attack="fgsm", norm="l2")]]
    assert "1 seed)" in result.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--attack_eps=0,-0.1"], "--attack_eps must be a finite radius in [0, 1]"),
    (["--attack_backend=cleverhans", "--attack=mim"], "runs only --attack=pgd"),
    (["--attack_models=teacher,nosuch"], "no trained model 'nosuch'"),
])
def test_bad_input_is_one_line_and_exit_code_2(run_dir, args, fragment):
    assert_one_line_error(swtf_cli("--mode=attack", f"--run_dir={run_dir}", "--attack_points=2", *args), fragment)


FLAG_DEFAULTS = dict(attack="pgd", attack_norm="linf", attack_eps=["0", "0.1"], attack_models=["all"],
                     attack_points=10, attack_seeds=["0", "1", "2"], attack_backend="swtf", attack_band="minmax",
                     attack_steps=20, attack_restarts=1)


def options(**overrides):
    return attack_mode.options_from_flags(types.SimpleNamespace(**dict(FLAG_DEFAULTS, **overrides)))


@pytest.mark.parametrize("overrides,fragment", [
    (dict(attack_eps=["0", "x"]), "comma-separated list of numbers"),
    (dict(attack_eps=["nan"]), "finite"),
    (dict(attack_seeds=["1", "1"]), "distinct"),
    (dict(attack_seeds=["-1"]), "distinct integers >= 0"),
    (dict(attack_points=0), "--attack_points"),
    (dict(attack_steps=0), "--attack_steps"),
    (dict(attack="bim", attack_restarts=2), "--attack_restarts applies to --attack=pgd"),
    (dict(attack_backend="cleverhans", attack_restarts=2), "has one start"),
    (dict(attack_backend="cleverhans", attack_steps=2), "--attack_steps >= 3"),
    (dict(attack_models=["all", "teacher"]), "'all' or a list"),
    (dict(attack_models=["a b"]), "letters, digits"),
])
def test_options_refuse_bad_flags(overrides, fragment):
    with pytest.raises(SwtfError, match=fragment):
        options(**overrides)


def test_options_sort_the_grid_and_give_each_attack_only_its_arguments():
    opts = options(attack_eps=["0.2", "0", "0.2"])
    assert opts.eps_grid == (0.0, 0.2) and opts.seeds == (0, 1, 2) and opts.models == ()
    assert attack_mode.attack_kwargs(opts) == {"norm": "linf", "steps": 20, "restarts": 1}
    fgsm = options(attack="fgsm")
    assert fgsm.seeds == (0,) and attack_mode.attack_kwargs(fgsm) == {"norm": "linf"}
    reference = options(attack_backend="cleverhans")
    assert attack_mode.attack_kwargs(reference) == {"norm": "linf", "steps": 20}


def test_default_restarts_are_a_start_at_x_and_a_random_one_for_pgd_and_one_start_otherwise():
    assert options(attack_restarts=None).restarts == attack_mode.PGD_RESTARTS == 2
    assert options(attack_restarts=None, attack="bim").restarts == 1
    assert options(attack_restarts=None, attack_backend="cleverhans").restarts == 1
    assert options(attack_restarts=3).restarts == 3
