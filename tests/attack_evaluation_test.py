"""`is_adversarial` and `robust_accuracy` against the exact robustness of a linear classifier."""

import keras
import numpy as np
import pytest

import swtf.attack
from swtf.models import LayerStack


@pytest.fixture(scope="module")
def linear():
    """Two-class linear model on 3x3x1 images with weight difference w = w1 - w0 and bias difference b."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(9, 2)).astype(np.float32)
    bias = np.array([0.3, -0.3], np.float32)
    dense = keras.layers.Dense(2)
    model = LayerStack([keras.layers.Flatten(), dense], (3, 3, 1))
    dense.set_weights([kernel, bias])
    return model, kernel[:, 1] - kernel[:, 0], bias[1] - bias[0]


def test_is_adversarial_matches_the_decision_rule(linear):
    model, w, b = linear
    x = np.random.default_rng(1).uniform(size=(200, 3, 3, 1)).astype(np.float32)
    predicted = (x.reshape(200, -1) @ w + b > 0).astype(int)
    y = np.random.default_rng(2).integers(0, 2, size=200)
    np.testing.assert_array_equal(swtf.attack.is_adversarial(model, x, y), predicted != y)
    np.testing.assert_array_equal(swtf.attack.is_adversarial(model, x, y, targeted=True), predicted == y)


@pytest.mark.parametrize("attack", ["fgsm", "bim", "mim"])
@pytest.mark.parametrize("norm,dual", [("linf", 1), ("l2", 2)])
def test_robust_accuracy_of_a_linear_model_is_exact(linear, attack, norm, dual):
    """A correct point resists every perturbation of norm <= eps iff |w.x + b| > eps * ||w||_dual.

    Inputs stay in [0.3, 0.7] and eps <= 0.2 (L-inf) so the box never binds; for a linear model the
    attacks that start at x walk straight to the optimal point x - eps * sign(y) * argmax_d <d, w>.
    """
    x, y, eps, exact = _linear_case(linear, norm, dual)
    assert swtf.attack.robust_accuracy(linear[0], x, y, eps, attack=attack, norm=norm) == pytest.approx(exact)


@pytest.mark.parametrize("norm,dual", [("linf", 1), ("l2", 2)])
def test_pgd_never_beats_the_exact_robust_accuracy(linear, norm, dual):
    """From a random start PGD's iterates approach the optimum, so it may miss points on the boundary,
    but it cannot find adversarial points that do not exist."""
    x, y, eps, exact = _linear_case(linear, norm, dual)
    accuracy = swtf.attack.robust_accuracy(linear[0], x, y, eps, norm=norm, restarts=2)
    assert exact <= accuracy <= exact + 0.02


def _linear_case(linear, norm, dual):
    """300 points in [0.3, 0.7] (30 misclassified), eps, and the exact robust accuracy."""
    model, w, b = linear
    x = np.random.default_rng(3).uniform(0.3, 0.7, size=(300, 3, 3, 1)).astype(np.float32)
    score = x.reshape(300, -1).astype(np.float64) @ w + b
    y = (score > 0).astype(int)
    y[:30] = 1 - y[:30]  # some clean errors
    eps = 0.1 if norm == "linf" else 0.15
    exact = np.mean((np.sign(score) == 2 * y - 1) & (np.abs(score) > eps * np.linalg.norm(w, dual)))
    assert 0.2 < exact < 0.8  # the case is not trivial
    return x, y, eps, exact
