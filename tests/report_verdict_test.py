"""The verdict's statistics against direct computations."""

import numpy as np

from swtf.report import verdict


def test_bootstrap_interval_matches_a_direct_resampling_and_covers_the_mean():
    rng = np.random.default_rng(3)
    a, b = rng.random(50), rng.random(50)
    low, high = verdict.paired_bootstrap_interval(a, b, samples=500, seed=1)
    resample = np.random.default_rng(1).integers(0, 50, size=(500, 50))
    means = (a - b)[resample].mean(axis=1)
    np.testing.assert_allclose([low, high], np.quantile(means, [0.025, 0.975]), rtol=1e-12)
    assert low <= np.mean(a - b) <= high


def test_misclassified_points_count_as_radius_zero():
    summary = verdict.model_summary([0.2, 0.3, 0.1], 0.15, np.array([True, False, True]), 100)
    assert summary["mean_radius"] == (0.2 + 0.0 + 0.1) / 3
    assert summary["certified_accuracy"] == 1 / 3
    assert summary["clean_accuracy"] == 2 / 3


def test_clear_differences_give_yes_or_no_and_noise_gives_no_claim():
    n = 200
    teacher = {"mean_radius": 0.05, "clean_accuracy": 0.95, "params": 1000}
    student = {"mean_radius": 0.10, "clean_accuracy": 0.95, "params": 900}
    rng = np.random.default_rng(0)
    t = rng.normal(0.05, 0.01, n)
    assert verdict.compare(teacher, student, t, t + 0.05, 0.05)["answer"] == "yes"
    assert verdict.compare(teacher, student, t + 0.05, t, 0.05)["answer"] == "no (less robust)"
    noisy = verdict.compare(teacher, student, t, t + rng.normal(0, 0.05, n) - 0.0, 0.05)
    low, high = noisy["interval"]
    assert (noisy["answer"] == "no significant difference") == (low <= 0 <= high)


def test_confounds_are_named_next_to_the_claim():
    teacher = {"mean_radius": 0.05, "clean_accuracy": 0.97, "params": 100_000}
    student = {"mean_radius": 0.10, "clean_accuracy": 0.90, "params": 5_000}
    r = np.full(20, 0.1)
    row = verdict.compare(teacher, student, r - 0.05, r, 0.05)
    assert any("7.0 points lower" in c for c in row["confounds"])
    assert any("0.05x the teacher's parameters" in c for c in row["confounds"])
    assert "Caution:" in verdict.sentence("teacher", "student", row, 0.05)
