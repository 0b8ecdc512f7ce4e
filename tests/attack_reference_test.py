"""swtf's PGD against cleverhans 4's (the independent reference) on a trained digits model."""

import keras
import numpy as np
import pytest

import swtf.attack
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.errors import SwtfError
from swtf.models import build

BUDGETS = {"linf": dict(eps=0.1, steps=10, step_size=0.025), "l2": dict(eps=0.5, steps=10, step_size=0.125)}


@pytest.fixture(scope="module")
def digits_model():
    """A small `snn` trained for a few epochs on the digits (about 90% test accuracy), and 200 test images."""
    data = load_dataset("digits")
    model = build("snn", data.input_shape, 10, width=64, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=8, batch_size=64, verbose=0)
    x, y = data.x_test[:200], data.y_test[:200]
    assert np.mean(swtf.attack.predict_labels(model, x) == y) > 0.85
    return model, x, y


def _lp(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.linalg.norm(flat, axis=1)


@pytest.mark.parametrize("norm", sorted(BUDGETS))
def test_cleverhans_reference_respects_ball_and_box(digits_model, norm):
    model, x, y = digits_model
    x_adv = cleverhans_pgd(model, x, y, norm=norm, **BUDGETS[norm])
    assert np.all(_lp(x_adv - x, norm) <= BUDGETS[norm]["eps"] + 1e-6)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert swtf.attack.is_adversarial(model, x_adv, y).mean() > np.mean(swtf.attack.predict_labels(model, x) != y)


@pytest.mark.parametrize("norm", sorted(BUDGETS))
def test_swtf_succeeds_wherever_cleverhans_default_pgd_does(digits_model, norm):
    """Cleverhans's PGD by default starts at the clean input, as swtf's first restart does: both run the
    same steps, and swtf keeps the best iterate, not the last."""
    model, x, y = digits_model
    theirs = swtf.attack.is_adversarial(model, cleverhans_pgd(model, x, y, norm=norm, rand_init=False,
                                                              **BUDGETS[norm]), y)
    for ours in (swtf.attack.pgd(model, x, y, norm=norm, **BUDGETS[norm]),
                 swtf.attack.pgd(model, x, y, norm=norm, restarts=2, **BUDGETS[norm]),
                 swtf.attack.bim(model, x, y, norm=norm, **BUDGETS[norm])):
        assert np.all(swtf.attack.is_adversarial(model, ours, y) >= theirs)


@pytest.mark.parametrize("norm", sorted(BUDGETS))
def test_pgd_as_strong_as_random_start_cleverhans_over_seeds(digits_model, norm):
    """Equal eps, steps, step size, one start each: cleverhans's random start may win a point or two (of
    200) on a given seed; pooled over seeds, swtf's success rate must not fall behind."""
    model, x, y = digits_model
    ours = swtf.attack.is_adversarial(model, swtf.attack.pgd(model, x, y, norm=norm, **BUDGETS[norm]), y)
    theirs = [swtf.attack.is_adversarial(model, cleverhans_pgd(model, x, y, norm=norm, seed=s, **BUDGETS[norm]), y)
              for s in range(4)]
    assert np.mean(ours) >= np.mean(theirs)


def test_cleverhans_reference_is_seeded(digits_model):
    model, x, y = digits_model
    first = cleverhans_pgd(model, x, y, seed=3, **BUDGETS["linf"])
    np.testing.assert_array_equal(first, cleverhans_pgd(model, x, y, seed=3, **BUDGETS["linf"]))


def test_cleverhans_reference_rejects_steps_longer_than_eps(digits_model):
    model, x, y = digits_model
    with pytest.raises(SwtfError, match="step_size <= eps"):
        cleverhans_pgd(model, x, y, 0.1, steps=1)
