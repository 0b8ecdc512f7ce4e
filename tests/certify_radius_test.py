"""Tests of `certified_radius`: exact radii on a linear net, verified radii with no counterexample
below them, bisection tightness for (inclusion-monotone) IBP, and 0 for misclassified points; the
counterexample distances (never closer than the decision boundary) and the bisection that skips radii
they refute (plain bisection's radii with fewer verifications, misclassified points never verified)."""

import keras
import numpy as np
import pytest

from swtf import certify
from swtf.certify.counterexamples import counterexample_radii
from swtf.certify.network import forward
from swtf.certify.sampling import perturbation_samples
from swtf.errors import SwtfError


def _threshold_model(offset):
    """f = (x, 0.5 - offset): class 0 wins exactly when x > 0.5 - offset."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.layers[0].set_weights([np.array([[1.0, 0.0]]), np.array([0.0, 0.5 - offset])])
    return model


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("method", certify.METHODS)
def test_linear_threshold_radius_is_the_distance_to_the_boundary(norm, method):
    radius = certify.certified_radius(_threshold_model(0.0), np.array([[0.8], [0.6]]), np.array([0, 0]),
                                      norm=norm, method=method, tol=1e-4)
    assert np.all(radius < [0.3, 0.1]) and np.all(radius > [0.3 - 1e-4, 0.1 - 1e-4])


def test_radius_is_capped_at_max_radius_when_the_whole_domain_is_safe():
    radius = certify.certified_radius(_threshold_model(1.0), np.array([[0.8]]), np.array([0]), max_radius=0.7)
    np.testing.assert_array_equal(radius, [0.7])


def _net(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 2, strides=2, padding="same",
                                                                         activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3)])


@pytest.mark.parametrize("method, norm", [("crown", "linf"), ("alpha-crown", "linf"), ("crown-ibp", "l2")])
def test_radius_is_verified_and_sampling_finds_no_counterexample(method, norm):
    model = _net(0)
    network = certify.as_network(model)
    rng = np.random.default_rng(0)
    x = rng.random((4, 4, 4, 1))
    y = np.argmax(forward(network, x), axis=1)
    radius = certify.certified_radius(model, x, y, norm=norm, method=method, max_radius=2.0, tol=1e-3)
    assert np.all(radius > 0)
    margins = certify.margin_bounds(model, x, y, radius, norm=norm, method=method)
    assert np.all(margins > 0)
    for i in range(len(x)):
        samples = perturbation_samples(x[i], radius[i], norm, (0.0, 1.0), 2000, rng)
        assert np.all(np.argmax(forward(network, samples), axis=1) == y[i])


def test_ibp_radius_is_within_tol_of_the_first_refuted_radius():
    # IBP bounds are inclusion-monotone in the radius, so bisection brackets the true IBP radius.
    model = _net(1)
    x = np.random.default_rng(1).random((5, 4, 4, 1))
    y = np.argmax(model(x).numpy(), axis=1)
    tol = 1e-3
    radius = certify.certified_radius(model, x, y, method="ibp", tol=tol)
    assert np.all((certify.margin_bounds(model, x, y, radius, method="ibp") > 0).all(axis=1))
    above = certify.margin_bounds(model, x, y, radius + tol, method="ibp")
    assert not np.any((above > 0).all(axis=1))


def test_misclassified_points_get_radius_zero():
    model = _net(2)
    x = np.random.default_rng(2).random((3, 4, 4, 1))
    wrong = (np.argmax(model(x).numpy(), axis=1) + 1) % 3
    np.testing.assert_array_equal(certify.certified_radius(model, x, wrong), np.zeros(3))


def test_bad_radius_arguments_raise():
    with pytest.raises(SwtfError, match="max_radius and tol"):
        certify.certified_radius(_threshold_model(0.0), np.array([[0.8]]), np.array([0]), max_radius=-1.0)
    with pytest.raises(SwtfError, match="labels must be"):
        certify.certified_radius(_threshold_model(0.0), np.array([[0.8]]), np.array([2]))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_counterexamples_lie_no_closer_than_the_boundary_and_within_twice_its_distance(norm):
    network = certify.as_network(_threshold_model(0.0))
    x, boundary = np.array([[0.8], [0.6], [0.9]]), np.array([0.3, 0.1, 0.4])
    found = counterexample_radii(network, x, np.array([0, 0, 0]), norm=norm, clip=(0.0, 1.0), max_radius=1.0,
                                 min_radius=1e-4)
    assert np.all(found >= boundary - 1e-6) and np.all(found <= 2 * boundary + 1e-6), found
    none = counterexample_radii(network, x, np.array([0, 0, 0]), norm=norm, clip=(0.0, 1.0), max_radius=0.05,
                                min_radius=1e-4)
    np.testing.assert_array_equal(none, np.inf)  # no counterexample exists within 0.05


@pytest.mark.parametrize("method, norm", [("crown", "linf"), ("ibp", "linf"), ("alpha-crown", "l2")])
def test_skipping_radii_refuted_by_counterexamples_finds_the_radii_of_plain_bisection(method, norm):
    """With fewer verifications, none of a misclassified point."""
    model = _net(3)
    network = certify.as_network(model)
    x = np.random.default_rng(3).random((8, 4, 4, 1))
    y = np.argmax(forward(network, x), axis=1)
    y[:2] = (y[:2] + 1) % 3  # two misclassified points
    original = certify.api.margin_lower_bounds
    verified = {}
    for counterexamples in (True, False):
        points = verified[counterexamples] = []

        def spy(verifier, batch, labels, *args):
            points.extend(map(tuple, batch.reshape(len(batch), -1)))
            return original(verifier, batch, labels, *args)

        certify.api.margin_lower_bounds = spy
        try:
            radius = certify.certified_radius(model, x, y, norm=norm, method=method, max_radius=2.0, tol=1e-3,
                                              counterexamples=counterexamples)
        finally:
            certify.api.margin_lower_bounds = original
        if counterexamples:
            searched = radius
    np.testing.assert_array_equal(searched, radius)
    np.testing.assert_array_equal(searched[:2], 0.0)
    assert np.all(searched[2:] > 0)
    assert len(verified[True]) < len(verified[False])
    assert not {tuple(p) for p in x[:2].reshape(2, -1)} & (set(verified[True]) | set(verified[False]))


def test_counterexample_search_by_default_only_for_crown_methods_on_large_networks(monkeypatch):
    from swtf.certify import radius as radius_module

    calls = []
    real = radius_module.counterexample_radii
    monkeypatch.setattr(radius_module, "counterexample_radii", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = np.random.default_rng(4).random((3, 4, 4, 1))
    small = _net(4)
    large = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(radius_module.COUNTEREXAMPLE_MIN_NEURONS, activation="relu"),
                              keras.layers.Dense(3)])
    for model, method, expected in [(small, "crown", 0), (large, "ibp", 0), (large, "crown", 1)]:
        calls.clear()
        y = np.argmax(model(x).numpy(), axis=1)
        certify.certified_radius(model, x, y, method=method, tol=1e-2)
        assert len(calls) == expected, (method, expected)
