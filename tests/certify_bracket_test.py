"""`radius_bracket`: certified radius <= attack radius on every point, the attack radius carried by a real
adversarial example (re-checked here in float64 and float32, at its reported distance), exact MILP agreeing
with both ends, and crown <= alpha-crown certified radii."""

import keras
import numpy as np
import pytest

from swtf import certify
from swtf.certify import exact
from swtf.certify.network import forward


def _network_and_model():
    """A small random ReLU network and the Keras model with its weights (float32 evaluation)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    return certify.from_keras(model), model


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_certified_radius_is_below_a_real_adversarial_example(norm):
    network, model = _network_and_model()
    rng = np.random.default_rng(0)
    x = rng.random((12, 4, 4, 1))
    y = np.argmax(forward(network, x), axis=1)
    y[0] = (y[0] + 1) % 3  # one misclassified point: both radii 0
    crown = certify.radius_bracket(model, x, y, norm=norm, method="crown", max_radius=2.0, tol=1e-3)
    alpha = certify.radius_bracket(model, x, y, norm=norm, method="alpha-crown", max_radius=2.0, tol=1e-3)
    assert crown.certified[0] == crown.attack[0] == 0
    assert np.all(crown.certified <= alpha.certified + 1e-12)
    assert np.all(alpha.certified <= crown.attack)
    found = np.flatnonzero(np.isfinite(crown.attack[1:])) + 1
    assert len(found) >= 6  # the attack breaks most points of this untrained network
    for i in found:
        point = crown.points[i]
        distance = np.max(np.abs(point - x[i])) if norm == "linf" else np.linalg.norm(point - x[i])
        assert distance == pytest.approx(crown.attack[i], rel=1e-12)
        assert np.all((point >= 0) & (point <= 1)) or norm == "l2"
        for logits in (forward(network, point[None])[0], np.asarray(model(point[None].astype(np.float32)))[0]):
            assert np.delete(logits, y[i]).max() > logits[y[i]]


def test_exact_verification_agrees_with_both_ends():
    network, model = _network_and_model()
    rng = np.random.default_rng(1)
    x = rng.random((5, 4, 4, 1))
    y = np.argmax(forward(network, x), axis=1)
    bracket = certify.radius_bracket(model, x, y, method="crown", tol=1e-3)
    for i in range(5):
        if bracket.certified[i] > 0:  # no counterexample inside the certified ball
            result = exact.verify_exact(network, x[i:i + 1], y[i:i + 1], bracket.certified[i])[0]
            assert result.status != "counterexample"
        if np.isfinite(bracket.attack[i]):  # the ball of the attack radius holds one: never certified
            result = exact.verify_exact(network, x[i:i + 1], y[i:i + 1], bracket.attack[i] * (1 + 1e-9))[0]
            assert result.status != "certified"
