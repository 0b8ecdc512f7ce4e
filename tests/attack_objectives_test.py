"""Margins, success and attack losses of `swtf.attack.objectives`, checked by brute force in NumPy."""

import numpy as np
import tensorflow as tf

from swtf.attack import objectives


def _brute_force_margin(logits, labels, targeted):
    out = []
    for z, c in zip(logits, labels):
        other = max(z[j] for j in range(len(z)) if j != c)
        out.append(other - z[c] if targeted else z[c] - other)
    return np.array(out)


def test_margin_and_success_match_brute_force():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=50).astype(np.int32)
    for targeted in (False, True):
        margin = objectives.margin(tf.constant(logits), tf.constant(labels), targeted).numpy()
        np.testing.assert_allclose(margin, _brute_force_margin(logits, labels, targeted), rtol=1e-6)
        success = objectives.succeeded(tf.constant(logits), tf.constant(labels), targeted).numpy()
        hit = logits.argmax(1) == labels
        np.testing.assert_array_equal(success, hit if targeted else ~hit)
        # Without ties, success is exactly a negative margin.
        np.testing.assert_array_equal(success, margin < 0)


def test_attack_objective_is_cross_entropy_or_minus_margin():
    logits = np.array([[2.0, 1.0, -1.0], [0.0, 3.0, 0.5]], np.float32)
    labels = np.array([0, 2], np.int32)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = -log_softmax[[0, 1], labels]
    for targeted, sign in ((False, 1.0), (True, -1.0)):
        got = objectives.attack_objective(tf.constant(logits), tf.constant(labels), "ce", targeted).numpy()
        np.testing.assert_allclose(got, sign * ce, rtol=1e-6)
    got = objectives.attack_objective(tf.constant(logits), tf.constant(labels), "margin", False).numpy()
    np.testing.assert_allclose(got, [-(2.0 - 1.0), -(0.5 - 3.0)])
