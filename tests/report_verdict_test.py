"""The verdict's statistics against direct computations and hand-computed cases."""

import numpy as np
import pytest

from swtf.errors import SwtfError
from swtf.report import verdict


def test_bootstrap_interval_matches_a_direct_resampling_and_covers_the_mean():
    rng = np.random.default_rng(3)
    a, b = rng.random(50), rng.random(50)
    low, high = verdict.paired_bootstrap_interval(a, b, samples=500, seed=1)
    resample = np.random.default_rng(1).integers(0, 50, size=(500, 50))
    means = (a - b)[resample].mean(axis=1)
    np.testing.assert_allclose([low, high], np.quantile(means, [0.025, 0.975]), rtol=1e-12)
    assert low <= np.mean(a - b) <= high


def test_bootstrap_p_value_is_twice_the_share_of_resampled_means_beyond_zero():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.01, 0.1, 40), rng.normal(0.0, 0.1, 40)
    means = (a - b)[np.random.default_rng(2).integers(0, 40, size=(700, 40))].mean(axis=1)
    expected = min(1.0, 2 * min(np.sum(means <= 0), np.sum(means >= 0)) / 700)
    assert verdict.paired_bootstrap_p_value(a, b, samples=700, seed=2) == pytest.approx(expected, abs=1e-12)
    assert verdict.paired_bootstrap_p_value(a, a, samples=700, seed=2) == 1.0  # no difference at all
    assert verdict.paired_bootstrap_p_value(a + 1, a, samples=700, seed=2) == 0.0  # every draw above 0


def test_holm_matches_hand_computed_adjustments():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(1*0.04, 0.06)=0.06
    np.testing.assert_allclose(verdict.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(verdict.holm([0.5, 0.6]), [1.0, 1.0])  # 2*0.5 = 1, then max(0.6, 1)
    np.testing.assert_allclose(verdict.holm([0.02]), [0.02])  # one claim: nothing to correct


def test_holm_turns_a_claim_that_passes_alone_into_inconclusive():
    alone = verdict.decide([{"p_value": 0.03, "mean_radius_difference": 0.1}])
    assert alone[0]["answer"] == "yes"
    together = verdict.decide([{"p_value": 0.03, "mean_radius_difference": 0.1},
                               {"p_value": 0.04, "mean_radius_difference": -0.1}])
    assert [r["answer"] for r in together] == ["inconclusive", "inconclusive"]
    assert [r["p_holm"] for r in together] == pytest.approx([0.06, 0.06])
    assert verdict.decide([{"p_value": 0.001, "mean_radius_difference": -0.1}])[0]["answer"] == "no"


# eps grid (deliberately unsorted) x 2 seeds x 5 points; True = still classified correctly under attack
GRID = [0.0, 0.1, 0.05, 0.2]
OUTCOMES = np.array([
    # eps 0: clean, the same for every seed (point 2 is misclassified)
    [[1, 1, 0, 1, 1], [1, 1, 0, 1, 1]],
    # eps 0.1: seed 1 breaks point 1; point 3 is broken by both; point 4 survives
    [[1, 1, 0, 0, 1], [1, 0, 0, 0, 1]],
    # eps 0.05: point 3 broken by seed 0 only; point 4 broken by seed 1 (a weaker attack at 0.1 missed it)
    [[1, 1, 0, 0, 1], [1, 1, 0, 1, 0]],
    # eps 0.2: everything but point 0 broken by some seed
    [[1, 0, 0, 0, 0], [1, 1, 0, 0, 1]],
], dtype=bool)
CLEAN = OUTCOMES[0, 0]


def test_attack_radius_is_the_smallest_grid_eps_that_broke_the_point_under_any_seed():
    radii = verdict.attack_radii(OUTCOMES, GRID, CLEAN)
    np.testing.assert_array_equal(radii, [np.inf, 0.1, 0.0, 0.05, 0.05])
    robust = verdict.empirically_robust(OUTCOMES, GRID, 0.1, CLEAN)
    np.testing.assert_array_equal(robust, [True, False, False, False, True])
    with pytest.raises(SwtfError, match="does not contain the study's eps 0.15"):
        verdict.empirically_robust(OUTCOMES, GRID, 0.15, CLEAN)
    with pytest.raises(SwtfError, match="eps"):
        verdict.attack_radii(OUTCOMES[:3], GRID, CLEAN)


def test_empirical_summary_caps_unbroken_points_and_takes_the_gap_over_broken_points():
    radii = verdict.attack_radii(OUTCOMES, GRID, CLEAN)
    certified = np.array([0.08, 0.05, 0.0, 0.02, 0.03])
    robust = verdict.empirically_robust(OUTCOMES, GRID, 0.1, CLEAN)
    summary = verdict.empirical_summary(certified, radii, robust, max(GRID))
    assert summary["empirical_robust_accuracy"] == pytest.approx(2 / 5)
    assert summary["mean_attack_radius"] == pytest.approx((0.2 + 0.1 + 0.0 + 0.05 + 0.05) / 5)
    # broken points 1..4: attack radii 0.1, 0, 0.05, 0.05 against certified 0.05, 0, 0.02, 0.03
    assert summary["verifier_gap"] == pytest.approx(0.2 / 4 - 0.10 / 4)
    assert summary["points_broken"] == 4
    assert verdict.empirical_summary(certified, np.full(5, np.inf), robust, 0.2)["verifier_gap"] is None


def test_misclassified_points_count_as_radius_zero():
    summary = verdict.model_summary([0.2, 0.3, 0.1], 0.15, np.array([True, False, True]), 100)
    assert summary["mean_radius"] == (0.2 + 0.0 + 0.1) / 3
    assert summary["certified_accuracy"] == 1 / 3
    assert summary["clean_accuracy"] == 2 / 3
    assert summary["points"] == 3


def _summary(points=200, clean=0.95, params=1000, gap=0.04):
    return {"points": points, "clean_accuracy": clean, "params": params, "verifier_gap": gap}


def _claim(teacher_values, student_values, *, points=200, student_clean=0.95, student_params=900):
    """The pair's (answer, sentence, rows) from per-basis radii {basis: (teacher, student)}."""
    summaries = {"teacher": _summary(points, gap=0.0456),
                 "student": _summary(points, clean=student_clean, params=student_params, gap=0.0351)}
    rows = verdict.decide([verdict.compare(summaries["teacher"], summaries["student"], teacher_values[basis],
                                           student_values[basis], basis=basis) for basis in teacher_values])
    return (*verdict.sentence("teacher", "student", rows, summaries, 0.1), rows)


def test_a_certified_gain_without_an_empirical_one_is_the_verifiers():
    rng = np.random.default_rng(0)
    certified, attacked = rng.normal(0.05, 0.01, 200), rng.choice([0.05, 0.1, 0.15, 0.2], 200)
    answer, text, rows = _claim({"certified": certified, "empirical": attacked},
                                {"certified": certified + 0.02, "empirical": attacked})
    assert [r["answer"] for r in rows] == ["yes", "inconclusive"]
    assert answer == "inconclusive" and text.startswith("Inconclusive:")
    assert "belongs to the verifier" in text and "0.0456 for teacher" in text and "0.0351 for student" in text
    assert "under attack they are not shown to differ" in text and "Warning" not in text
    answer, text, _ = _claim({"certified": certified, "empirical": attacked},
                             {"certified": certified + 0.02, "empirical": attacked - 0.05})
    assert answer == "inconclusive" and "belongs to the verifier" in text
    assert "under attack the student is less robust" in text


def test_both_bases_yes_is_yes_and_both_no_is_no():
    rng = np.random.default_rng(1)
    certified, attacked = rng.normal(0.05, 0.01, 200), rng.normal(0.1, 0.02, 200)
    answer, text, _ = _claim({"certified": certified, "empirical": attacked},
                             {"certified": certified + 0.02, "empirical": attacked + 0.02})
    assert answer == "yes" and text.startswith("Yes:") and "verifier" not in text
    answer, text, _ = _claim({"certified": certified + 0.02, "empirical": attacked + 0.02},
                             {"certified": certified, "empirical": attacked})
    assert answer == "no" and text.startswith("No:")
    noise = rng.normal(0, 0.05, 200)
    answer, _, rows = _claim({"certified": certified, "empirical": attacked},
                             {"certified": certified + noise, "empirical": attacked + noise})
    low, high = rows[0]["interval"]
    assert low <= 0 <= high and rows[0]["answer"] == "inconclusive" and answer == "inconclusive"


def test_few_points_keep_the_answer_but_warn_and_a_missing_attack_is_named():
    rng = np.random.default_rng(2)
    certified, attacked = rng.normal(0.05, 0.01, 20), rng.normal(0.1, 0.02, 20)
    answer, text, _ = _claim({"certified": certified, "empirical": attacked},
                             {"certified": certified + 0.02, "empirical": attacked + 0.02}, points=20)
    assert answer == "yes" and "Warning: only 20 test points (fewer than 100)" in text
    answer, text, _ = _claim({"certified": certified}, {"certified": certified + 0.02})
    assert answer == "inconclusive" and "attack stage has not run" in text


def test_confounds_quote_clean_accuracy_on_the_compared_points_and_size():
    r = np.full(200, 0.1)
    _, text, rows = _claim({"certified": r - 0.05}, {"certified": r}, student_clean=0.88, student_params=50)
    assert any("on the 200 attacked and certified points is 7.0 points lower than the teacher's (0.880 against "
               "0.950)" in c for c in rows[0]["confounds"])
    assert any("0.05x the teacher's parameters" in c for c in rows[0]["confounds"])
    assert "Caution:" in text


def test_hierarchical_bootstrap_matches_a_loop_over_replicates_and_seed_slots():
    rng = np.random.default_rng(5)
    diff = rng.normal(0.0, 0.1, (3, 40)) + np.array([[0.0], [0.05], [-0.02]])
    means = verdict.hierarchical_bootstrap_means(diff, 300, 7, chunk=64)  # several chunks, one partial
    draws = np.random.default_rng(7)
    points, seeds = draws.integers(0, 40, size=(300, 3, 40)), draws.integers(0, 3, size=(300, 3))
    expected = [np.mean([diff[seeds[b, k], points[b, k]].mean() for k in range(3)]) for b in range(300)]
    np.testing.assert_allclose(means, expected, rtol=1e-12)
    # The seed draw matters: replacing every seed slot by one seed is not the same statistic.
    assert not np.allclose(means, [diff[0, points[b, 0]].mean() for b in range(300)])


def test_hierarchical_bootstrap_with_one_seed_is_the_paired_bootstrap():
    rng = np.random.default_rng(6)
    a, b = rng.random(60), rng.random(60)
    one_seed = verdict.hierarchical_bootstrap_means((a - b)[None], 500, 3)
    paired = (a - b)[np.random.default_rng(3).integers(0, 60, size=(500, 60))].mean(axis=1)
    np.testing.assert_array_equal(one_seed, paired)
    assert verdict.paired_bootstrap_interval(a[None], b[None], samples=500, seed=3) == \
        verdict.paired_bootstrap_interval(a, b, samples=500, seed=3)
    assert verdict.paired_bootstrap_p_value(a[None], b[None], samples=500, seed=3) == \
        verdict.paired_bootstrap_p_value(a, b, samples=500, seed=3)


def test_hierarchical_bootstrap_spread_has_the_known_two_level_variance():
    """For S seeds with per-seed means m_s and per-seed (population) variances v_s over N points, the bootstrap
    mean of S seed draws, each the mean of N point draws, has variance (var(m) + mean(v) / N) / S exactly."""
    rng = np.random.default_rng(8)
    diff = rng.normal(0.0, 0.2, (4, 50)) + np.array([[0.0], [0.1], [0.3], [-0.1]])  # a large seed effect
    means = verdict.hierarchical_bootstrap_means(diff, 20000, 9)
    expected = (np.var(diff.mean(axis=1)) + np.mean(np.var(diff, axis=1)) / 50) / 4
    assert np.var(means) == pytest.approx(expected, rel=0.05)
    assert np.mean(means) == pytest.approx(diff.mean(), abs=3 * np.sqrt(expected / 20000))
    # The paired bootstrap over the pooled points would be far too narrow: it ignores the seed effect.
    pooled = diff.ravel()[rng.integers(0, 200, size=(20000, 200))].mean(axis=1)
    assert np.var(pooled) < 0.3 * expected


def test_compare_over_seeds_takes_the_mean_of_per_seed_differences():
    rng = np.random.default_rng(10)
    teacher, student = rng.random((3, 80)), rng.random((3, 80)) + 0.05
    summary = _summary(points=80)
    row = verdict.compare(summary, summary, teacher, student, basis="certified", seed=4)
    assert row["training_seeds"] == 3
    assert row["mean_radius_difference"] == pytest.approx(np.mean((student - teacher).mean(axis=1)))
    means = verdict.hierarchical_bootstrap_means(student - teacher, verdict.BOOTSTRAP_SAMPLES, 4)
    np.testing.assert_allclose(row["interval"], np.quantile(means, [0.025, 0.975]))
    assert verdict.compare(summary, summary, teacher[0], student[0], basis="certified")["training_seeds"] == 1


def test_the_sentence_makes_one_claim_per_sentence_each_naming_its_basis_first():
    rng = np.random.default_rng(0)
    certified, attacked = rng.normal(0.05, 0.01, 200), rng.choice([0.05, 0.1, 0.15, 0.2], 200)
    _, text, _ = _claim({"certified": certified, "empirical": attacked},
                        {"certified": certified + 0.02, "empirical": attacked})
    sentences = [s for s in text.replace("p<0.0005.", "p<0.0005|").replace(". ", "|").split("|") if s]
    starts = [s.split(":")[0].split(" (")[0].strip() for s in sentences]
    assert starts == ["Inconclusive", "Certified basis", "Empirical basis", "Sample", "Verifier", "Verifier gap"]
    assert all(len(s) < 220 for s in sentences), sentences
