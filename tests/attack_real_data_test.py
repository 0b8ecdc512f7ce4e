"""swtf's attacks on real MNIST and CIFAR-10 (the copies in ../shared/data) against cleverhans 4's PGD.

Real pixels (multiples of 1/255) put x - eps just above 0 at many pixels of every eps; the digits data
(multiples of 1/16) hid what that did to a repair after the loop (issue 21). At equal steps and step size,
swtf's PGD (first start at x, strongest iterate kept) must be at least as strong as cleverhans's PGD from x
and from a random start, up to one point of 200, at every eps; APGD at its default budget at least as strong
as PGD, up to one point too: no attack dominates another point by point (on the MNIST convex_cnn at eps 0.02,
APGD-100 ends at margin +0.009 on one point where PGD-20's small steps reached -0.027, while at eps 0.1 it
finds three points PGD misses).
"""

import os

import keras
import numpy as np
import pytest

import swtf.attack
from swtf.attack.reference import cleverhans_pgd
from swtf.data import load_dataset
from swtf.models import build

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
POINTS = 200
STEPS = 20
GRIDS = {"mnist": (0.02, 0.05, 0.1, 0.15, 0.2, 0.3), "cifar10": (1 / 255, 2 / 255, 4 / 255, 8 / 255)}
MODELS = {"mnist": ("convex_cnn", {}), "cifar10": ("snn", {"width": 256})}

pytestmark = pytest.mark.slow


def _trained(name):
    if not os.path.isfile(os.path.join(SHARED_DATA, f"{name}.npz")):
        pytest.skip(f"{name}.npz is not in {SHARED_DATA}")  # the real copies live beside the checkout
    data = load_dataset(name, data_dir=SHARED_DATA, seed=0, train_limit=10000, test_limit=POINTS)
    arch, hparams = MODELS[name]
    model = build(arch, data.input_shape, data.num_classes, seed=0, **hparams)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=64, verbose=0)
    return model, data.x_test, data.y_test


def _robust_points(model, x_adv, y):
    """How many points the model still classifies correctly (counts, so that "one point" is exact)."""
    return int(np.sum(~swtf.attack.is_adversarial(model, x_adv, y)))


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_pgd_is_as_strong_as_cleverhans_and_apgd_as_pgd_on_real_data(name):
    model, x, y = _trained(name)
    assert _robust_points(model, x, y) > (0.9 if name == "mnist" else 0.3) * POINTS
    for eps in GRIDS[name]:
        budget = dict(steps=STEPS, step_size=2.5 * eps / STEPS)
        ours = swtf.attack.pgd(model, x, y, eps, **budget)
        assert np.all(np.abs(ours.astype(np.float64) - x).max(axis=(1, 2, 3)) <= eps)
        pgd = _robust_points(model, ours, y)
        for rand_init in (False, True):
            theirs = _robust_points(model, cleverhans_pgd(model, x, y, eps, rand_init=rand_init, **budget), y)
            assert pgd <= theirs + 1, (eps, rand_init, pgd, theirs)
        apgd = _robust_points(model, swtf.attack.apgd(model, x, y, eps), y)
        assert apgd <= pgd + 1, (eps, apgd, pgd)
