"""inceval.stats against scipy and by hand: exact intervals, McNemar, bootstrap, NLL and ECE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from inceval import stats


def _interval_cases() -> list[tuple[int, int]]:
    rng = np.random.default_rng(9)
    cases = []
    for n in (1, 2, 5, 16, 20, 100, 965, 1000, 48_238, 50_000):
        cases += [(0, n), (n, n), (1, n) if n > 1 else (0, n)]
        cases += [(int(k), n) for k in rng.integers(0, n + 1, size=3)]
    return cases


@pytest.mark.parametrize(("k", "n"), _interval_cases())
def test_clopper_pearson_equals_scipy_exact_interval(k: int, n: int) -> None:
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = stats.clopper_pearson(k, n)
    # binomtest finds its bounds by root finding to an absolute 2e-12 (brentq's xtol) ...
    assert low == pytest.approx(expected.low, rel=1e-9, abs=2e-12)
    assert high == pytest.approx(expected.high, rel=1e-9, abs=2e-12)
    # ... the beta quantiles are the same bounds to full precision.
    if k > 0:
        assert low == pytest.approx(sps.beta.ppf(0.025, k, n - k + 1), rel=1e-9)
    if k < n:
        assert high == pytest.approx(sps.beta.ppf(0.975, k + 1, n - k), rel=1e-9)
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)


def test_clopper_pearson_of_one_success_equals_its_closed_form() -> None:
    # P[X >= 1] = 1 - (1 - p)^n = 0.025  =>  p = 1 - 0.975^(1/n)
    for n in (100, 50_000):
        assert stats.clopper_pearson(1, n)[0] == pytest.approx(
            -math.expm1(math.log1p(-0.025) / n), rel=1e-10)


@pytest.mark.parametrize(("k", "n", "level"), [(3, 40, 0.99), (500, 1000, 0.9), (0, 7, 0.5)])
def test_clopper_pearson_other_levels_equal_scipy(k: int, n: int, level: float) -> None:
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert stats.clopper_pearson(k, n, level) == pytest.approx((expected.low, expected.high),
                                                               rel=1e-9, abs=1e-13)


def test_error_interval_is_the_exact_interval_in_percent() -> None:
    expected = sps.binomtest(230, 965).proportion_ci(confidence_level=0.95, method="exact")
    low, high = stats.error_interval_pp(230, 965)
    assert (low, high) == pytest.approx((100 * expected.low, 100 * expected.high), rel=1e-9)


def _discordant_cases() -> list[tuple[int, int]]:
    rng = np.random.default_rng(4)
    cases = [(0, 1), (1, 0), (2, 0), (0, 2), (3, 3), (1, 10), (200, 0), (0, 200), (60, 100),
             (25_000, 25_000), (24_000, 25_500)]
    cases += [(int(b), int(c)) for b, c in rng.integers(0, 60, size=(8, 2))]
    cases += [(int(b), int(c)) for b, c in rng.integers(0, 5000, size=(4, 2))]
    return cases


@pytest.mark.parametrize(("b", "c"), _discordant_cases())
def test_mcnemar_equals_scipy_two_sided_binomial_test(b: int, c: int) -> None:
    if b + c == 0:
        pytest.skip("covered by the b + c = 0 test")
    expected = sps.binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_without_discordant_pairs_is_one_and_hand_values() -> None:
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(2, 0) == pytest.approx(0.5, rel=1e-12)  # 2 x (1/2)^2
    assert stats.mcnemar_exact(0, 3) == pytest.approx(0.25, rel=1e-12)  # 2 x (1/2)^3
    assert stats.mcnemar_exact(1, 2) == 1.0  # 2 x (1 + 3) / 8 = 1, capped
    assert stats.mcnemar_exact(1, 4) == pytest.approx(12 / 32, rel=1e-12)  # 2 x (1 + 5) / 32
    with pytest.raises(ValueError):
        stats.mcnemar_exact(-1, 2)


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.3), (4, 10, 0.3), (10, 10, 0.3),
                                           (9_800, 50_000, 0.2), (3, 1000, 0.001)])
def test_binomial_tails_equal_scipy(k: int, n: int, p: float) -> None:
    assert math.exp(stats.binom_log_cdf(k, n, p)) == pytest.approx(sps.binom.cdf(k, n, p),
                                                                   rel=1e-10)
    assert math.exp(stats.binom_log_sf(k, n, p)) == pytest.approx(sps.binom.sf(k - 1, n, p),
                                                                  rel=1e-10)


def test_paired_bootstrap_counts_and_delta_by_hand() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)  # 4 wrong
    b = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)  # 2 wrong
    result = stats.paired_bootstrap(a, b, resamples=2000, seed=3)
    assert (result.images, result.a_wrong, result.b_wrong) == (10, 4, 2)
    assert (result.only_a_wrong, result.only_b_wrong) == (3, 1)
    assert result.delta == pytest.approx(20.0)
    assert result.p_value == pytest.approx(sps.binomtest(3, 4, 0.5).pvalue)
    # A resample's difference is a whole number of images out of 10.
    assert result.low % 10 == pytest.approx(0) and result.high % 10 == pytest.approx(0)
    assert result.low <= result.delta <= result.high
    assert stats.paired_bootstrap(a, b, resamples=2000, seed=3) == result
    same = stats.paired_bootstrap(a, a, resamples=100)
    assert (same.delta, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_matches_resampling_the_images_themselves() -> None:
    # Reference: draw image indices with replacement and recompute both errors (the textbook
    # paired bootstrap); the interval of inceval's faster draw must agree within Monte Carlo error.
    rng = np.random.default_rng(11)
    n = 400
    a = rng.random(n) < 0.3
    b = np.where(rng.random(n) < 0.85, a, ~a)
    result = stats.paired_bootstrap(a, b, resamples=20_000, seed=1)
    index = rng.integers(0, n, size=(4000, n))
    reference = 100.0 * (a[index].mean(axis=1) - b[index].mean(axis=1))
    low, high = np.quantile(reference, [0.025, 0.975])
    assert result.low == pytest.approx(low, abs=0.75)  # 3 images of 400
    assert result.high == pytest.approx(high, abs=0.75)
    # Ignoring the pairing (resampling a and b independently) would give a far wider interval.
    unpaired = 100.0 * (a[index].mean(axis=1) - b[rng.integers(0, n, size=(4000, n))].mean(axis=1))
    assert np.subtract(*np.quantile(unpaired, [0.975, 0.025])) > 1.5 * (result.high - result.low)


def test_paired_bootstrap_covers_the_true_difference_at_about_the_nominal_rate() -> None:
    # Images are drawn from a population where a alone is wrong with probability 0.08 and b alone
    # with 0.05, so the true difference of error rates is 3 pp.
    rng = np.random.default_rng(2026)
    trials, n, covered = 400, 600, 0
    for trial in range(trials):
        kind = rng.choice(4, size=n, p=[0.08, 0.05, 0.15, 0.72])  # only a, only b, both, neither
        a = (kind == 0) | (kind == 2)
        b = (kind == 1) | (kind == 2)
        result = stats.paired_bootstrap(a, b, resamples=1000, seed=trial)
        covered += result.low <= 3.0 <= result.high
    rate = covered / trials
    # The binomial sd of the rate at 0.95 over 400 trials is 0.011. A bootstrap that ignored the
    # pairing would cover about 99.8 % here (its sd is 1.6 x too large); one that was too narrow
    # would fall below the lower bound.
    assert 0.915 <= rate <= 0.98, rate


def test_paired_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.ones(3, bool), np.ones(3, bool), resamples=0)


def test_nll_and_ece_equal_a_hand_computation() -> None:
    # Four images, three classes. Top-1 probabilities 0.5, 0.9, 0.4, 0.7; labels 0, 1, 2, 2.
    probs = np.array([[0.5, 0.3, 0.2],
                      [0.05, 0.9, 0.05],
                      [0.4, 0.35, 0.25],
                      [0.1, 0.2, 0.7]], dtype=np.float64)
    labels = np.array([0, 1, 2, 2])
    vectors = stats.per_image_from_probs(probs, labels)
    np.testing.assert_array_equal(vectors.top1_correct, [True, True, False, True])
    result = vectors.calibration()
    # NLL = -(ln 0.5 + ln 0.9 + ln 0.25 + ln 0.7) / 4
    assert result.nll == pytest.approx(0.635_369_3, abs=1e-6)
    # Bins of width 1/15: 0.4 -> bin 6 (0.4 x 15 = 6), 0.5 -> bin 7, 0.7 -> bin 10, 0.9 -> 13.
    # Each bin holds one image: ECE = (|0 - 0.4| + |1 - 0.5| + |1 - 0.7| + |1 - 0.9|) / 4 = 0.325.
    assert result.ece == pytest.approx(32.5, abs=1e-9)
    assert (result.images, result.clipped) == (4, 0)


def test_ece_pools_images_of_one_bin_and_the_last_bin_is_closed() -> None:
    # Confidences 0.95, 1.0 (bin 14, closed at 1) and 0.96 (bin 14): accuracy 2/3, mean conf
    # 0.97: ECE = |2/3 - 0.97| = 0.30333...; plus nothing else.
    label_prob = np.array([0.95, 0.0, 0.96])
    confidence = np.array([0.95, 1.0, 0.96])
    correct = np.array([True, False, True])
    result = stats.calibration(label_prob, confidence, correct)
    assert result.ece == pytest.approx(100 * abs(2 / 3 - 0.97), abs=1e-9)
    # A label probability of 0 (float16 underflow) is clipped at 2**-24 before the log.
    assert result.clipped == 1
    assert result.nll == pytest.approx((-math.log(0.95) + 24 * math.log(2) - math.log(0.96)) / 3)


def test_per_image_counts_a_tie_for_first_as_wrong() -> None:
    probs = np.array([[0.4, 0.4, 0.2], [0.6, 0.3, 0.1]], dtype=np.float16)
    vectors = stats.per_image_from_probs(probs, np.array([0, 0]), chunk_rows=1)
    np.testing.assert_array_equal(vectors.top1_correct, [False, True])
    np.testing.assert_array_equal(vectors.top5_correct, [True, True])
    assert vectors.confidence == pytest.approx([0.4, 0.6], abs=1e-3)
