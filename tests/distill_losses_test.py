"""Distillation losses against NumPy references on fixed numbers."""

import numpy as np
import pytest

from swtf.distill import losses

TEACHER = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0], [-4.0, 0.0, 4.0]], np.float32)
STUDENT = np.array([[1.0, 0.0, 0.0], [0.5, 2.0, -1.0], [3.0, -1.0, 0.0], [-1.0, 1.0, 2.0]], np.float32)
LABELS = np.array([0, 1, 2, 2])


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_cross_entropy(labels, logits):
    return -np.log(np_softmax(logits)[np.arange(len(labels)), labels])


def test_matching_logits_is_mean_squared_logit_difference():
    expected = np.mean([[(t - s) ** 2 for t, s in zip(tr, sr)] for tr, sr in zip(TEACHER, STUDENT)])
    np.testing.assert_allclose(losses.matching_logits(TEACHER, STUDENT).numpy(), expected, rtol=1e-6)


def test_matching_logits_hand_computed():
    # differences (1, -2) and (0, 3): squares 1, 4, 0, 9, mean 3.5
    assert losses.matching_logits([[1.0, 0.0], [2.0, 3.0]], [[0.0, 2.0], [2.0, 0.0]]).numpy() == pytest.approx(3.5)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_soft_target_cross_entropy_matches_numpy(temperature):
    targets = np_softmax(TEACHER / temperature)
    expected = np.mean(-np.sum(targets * np.log(np_softmax(STUDENT)), axis=-1))
    got = losses.soft_target_cross_entropy(TEACHER, STUDENT, temperature).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_soft_target_cross_entropy_at_huge_temperature_is_uniform_target_cross_entropy():
    expected = np.mean(-np.mean(np.log(np_softmax(STUDENT)), axis=-1))
    got = losses.soft_target_cross_entropy(TEACHER, STUDENT, 1e6).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (10.0, 1.0), (2.0, 0.0)])
def test_hinton_kd_matches_numpy(temperature, alpha):
    p, q = np_softmax(TEACHER / temperature), np_softmax(STUDENT / temperature)
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    expected = alpha * temperature ** 2 * kl.mean() + (1 - alpha) * np_cross_entropy(LABELS, STUDENT).mean()
    got = losses.hinton_kd(TEACHER, STUDENT, LABELS, temperature, alpha).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_hinton_kd_is_zero_when_student_equals_teacher_and_alpha_is_one():
    assert losses.hinton_kd(TEACHER, TEACHER, LABELS, 3.0, 1.0).numpy() == pytest.approx(0.0, abs=1e-6)


def test_losses_are_finite_for_huge_logits():
    big_teacher, big_student = TEACHER * 1e4, STUDENT * 1e4
    for value in (losses.soft_target_cross_entropy(big_teacher, big_student, 1.0),
                  losses.hinton_kd(big_teacher, big_student, LABELS, 1.0, 0.5)):
        assert np.isfinite(value.numpy())
    # Student logits (1e4, 0, 0) against label 0 and teacher argmax 0: both terms vanish.
    assert losses.hinton_kd(big_teacher[:1], big_student[:1], LABELS[:1], 1.0, 0.5).numpy() == pytest.approx(0.0)


def test_masked_cross_entropy_ignores_unlabelled_examples():
    labels = np.array([0, losses.UNLABELLED, 2, losses.UNLABELLED])
    expected = np_cross_entropy(labels[[0, 2]], STUDENT[[0, 2]]).mean()
    np.testing.assert_allclose(losses.masked_cross_entropy(labels, STUDENT).numpy(), expected, rtol=1e-6)
    assert losses.masked_cross_entropy(np.full(4, losses.UNLABELLED), STUDENT).numpy() == 0.0


def test_hinton_kd_averages_soft_term_over_all_and_hard_term_over_labelled():
    labels = np.array([0, losses.UNLABELLED, losses.UNLABELLED, 2])
    temperature, alpha = 3.0, 0.7
    p, q = np_softmax(TEACHER / temperature), np_softmax(STUDENT / temperature)
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean()
    ce = np_cross_entropy(labels[[0, 3]], STUDENT[[0, 3]]).mean()
    got = losses.hinton_kd(TEACHER, STUDENT, labels, temperature, alpha).numpy()
    np.testing.assert_allclose(got, alpha * temperature ** 2 * kl + (1 - alpha) * ce, rtol=1e-5)
