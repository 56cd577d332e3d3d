"""Evaluation statistics against references: scipy's permutation test, sklearn's kappa, the krippendorff package,
a direct likelihood maximisation for Bradley-Terry, and coverage/power measured by simulation."""
from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from sklearn.metrics import cohen_kappa_score

from aigc_lib.metrics.stats import (
    bootstrap_ci,
    bradley_terry,
    cohen_kappa,
    elo,
    krippendorff_alpha,
    paired_bootstrap,
    permutation_test,
    preference_power,
    preference_power_curve,
    simulate_raters,
    subsample_curve,
)

STRENGTHS = np.linspace(-1.5, 1.5, 6)  # well-separated log-strengths, mean 0


# --------------------------------------------------------------------------------------------- bootstrap
def _coverage(level: float, draws: int = 400, n: int = 50) -> float:
    rng = np.random.default_rng(0)
    hits = 0
    for seed in range(draws):
        ci = bootstrap_ci(rng.normal(1.0, 2.0, n), n_boot=300, level=level, seed=seed)
        hits += ci["low"] <= 1.0 <= ci["high"]
    return hits / draws


def test_bootstrap_interval_covers_the_true_mean_at_its_level():
    assert 0.91 <= _coverage(0.95) <= 0.98  # 0.925 measured (400 draws of N=50, n_boot=300); 0.950 over 2000
    assert 0.73 <= _coverage(0.80) <= 0.87  # 0.76 measured: a narrower level covers less


def test_bootstrap_resamples_aligned_columns_together_for_corpus_metrics():
    # a corpus ratio (like BLEU's clipped matches / lengths) is a ratio of sums, not a mean of per-item ratios
    matches, lengths = np.array([1.0, 9.0, 2.0, 8.0]), np.array([2.0, 10.0, 10.0, 10.0])
    ci = bootstrap_ci((matches, lengths), statistic=lambda m, n: m.sum() / n.sum(), n_boot=500)
    assert ci["estimate"] == pytest.approx(20 / 32) and ci["estimate"] != pytest.approx(np.mean(matches / lengths))
    assert ci["low"] < ci["estimate"] < ci["high"]
    # lists of strings are indexed item by item, and both columns get the same items
    hyps, refs = ["a b", "c d", "e f", "g h"], ["a b", "c x", "e f", "y h"]
    ci = bootstrap_ci((hyps, refs), statistic=lambda h, r: np.mean([x == y for x, y in zip(h, r)]), n_boot=300)
    assert ci["estimate"] == 0.5 and 0 <= ci["low"] < 0.5 < ci["high"] <= 1
    # an index array with a statistic of indices draws exactly what resampling the values draws
    x = np.random.default_rng(0).normal(size=30)
    assert bootstrap_ci(np.arange(30), statistic=lambda idx: x[idx].mean(), n_boot=200) == bootstrap_ci(x, n_boot=200)


def test_paired_bootstrap_tells_a_better_system_from_an_equal_one():
    rng = np.random.default_rng(1)
    b = rng.normal(0.5, 0.2, 200)
    a = b + rng.normal(0.05, 0.05, 200)  # A is better on most items
    better = paired_bootstrap(a, b, n_boot=1000)
    assert better["difference"] == pytest.approx(np.mean(a - b))
    assert better["p_value"] < 0.01 and 0 < better["low"] < better["difference"] < better["high"]
    tie = paired_bootstrap(b + rng.normal(0, 0.05, 200), b, n_boot=1000)
    assert 0.05 < tie["p_value"] < 0.95 and tie["low"] < 0 < tie["high"]


# ------------------------------------------------------------------------------------------- permutation
def _mean_diff(x, y, axis):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def test_unpaired_permutation_test_equals_scipy_when_both_enumerate():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 6), rng.normal(0.8, 1, 5)  # C(11, 6) = 462 splits
    ref = scipy.stats.permutation_test((a, b), _mean_diff, permutation_type="independent", vectorized=True,
                                       n_resamples=10_000)
    assert permutation_test(a, b, paired=False, n_permutations=10_000) == pytest.approx(ref.pvalue, abs=1e-12)


def test_unpaired_permutation_test_agrees_with_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 40), rng.normal(0.45, 1, 45)
    ref = scipy.stats.permutation_test((a, b), _mean_diff, permutation_type="independent", vectorized=True,
                                       n_resamples=20_000, rng=1).pvalue
    ours = permutation_test(a, b, paired=False, n_permutations=20_000, seed=0)
    assert 0.005 < ours < 0.5
    assert abs(ours - ref) < 4 * np.sqrt(2 * ref * (1 - ref) / 20_000)  # two independent estimates of one p


def test_paired_permutation_test_equals_the_enumerated_sign_flip_distribution():
    rng = np.random.default_rng(4)
    d = rng.normal(0.4, 1, 8)
    a, b = d + 1.0, np.ones(8)
    flipped = np.array([np.mean(np.array(s) * d) for s in itertools.product((-1, 1), repeat=8)])  # all 2^8
    p_greater, p_less = np.mean(flipped >= d.mean() - 1e-12), np.mean(flipped <= d.mean() + 1e-12)
    expected = min(1.0, 2 * min(p_greater, p_less))
    assert permutation_test(a, b, paired=True, n_permutations=256) == pytest.approx(expected, abs=1e-12)
    ref = scipy.stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                       permutation_type="samples", n_resamples=256)
    assert expected == pytest.approx(ref.pvalue, abs=1e-12)
    monte_carlo = permutation_test(a, b, paired=True, n_permutations=100)  # 100 < 256: drawn, not enumerated
    assert abs(monte_carlo - expected) < 0.15


def test_subsample_curve_spread_shrinks_like_one_over_root_n():
    x = np.random.default_rng(5).normal(0, 1, 2000)
    curve = subsample_curve(np.mean, x, sizes=[25, 400], repeats=60, seed=0)
    assert list(curve["size"]) == [25, 400]
    ratio = curve["std"][0] / curve["std"][1]  # sqrt(400/25) = 4 without the finite-population correction
    assert 3.0 < ratio < 5.5
    assert abs(curve["mean"][1]) < 0.1


# -------------------------------------------------------------------------------------- human judgements
def _rows(sim: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([sim["first"], sim["second"], sim["first_won"]])


def test_bradley_terry_recovers_known_strengths_from_simulated_preferences():
    rows = _rows(simulate_raters(STRENGTHS, 3000, n_raters=5, seed=0))
    fit = bradley_terry(rows, len(STRENGTHS))
    est = fit["log_strength"]
    assert est.mean() == pytest.approx(0, abs=1e-12)
    assert scipy.stats.spearmanr(est, STRENGTHS).statistic == 1.0
    rmse = np.sqrt(np.mean((est - STRENGTHS) ** 2))
    assert rmse < 0.12  # 0.043 measured (0.065 mean, 0.11 max over 50 seeds); all zeros: 1.02
    assert np.sqrt(np.mean(STRENGTHS**2)) > 8 * rmse


def test_bradley_terry_mm_reaches_the_maximum_likelihood():
    rows = _rows(simulate_raters(STRENGTHS, 400, seed=1))
    i, j, w = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2]

    def neg_log_lik(theta):  # -sum [w log s(theta_i - theta_j) + (1 - w) log s(theta_j - theta_i)]
        z = theta[i] - theta[j]
        return np.sum(w * np.logaddexp(0, -z) + (1 - w) * np.logaddexp(0, z))

    ref = scipy.optimize.minimize(neg_log_lik, np.zeros(len(STRENGTHS)), method="BFGS", options={"gtol": 1e-9}).x
    np.testing.assert_allclose(bradley_terry(rows, len(STRENGTHS))["log_strength"], ref - ref.mean(), atol=1e-5)


def test_bradley_terry_intervals_cover_the_truth_and_ties_and_priors_are_handled():
    rows = _rows(simulate_raters(STRENGTHS, 1500, seed=2))
    fit = bradley_terry(rows, len(STRENGTHS), n_boot=100, seed=0)
    assert np.all(fit["low"] < fit["log_strength"]) and np.all(fit["log_strength"] < fit["high"])
    assert np.mean((fit["low"] <= STRENGTHS) & (STRENGTHS <= fit["high"])) >= 5 / 6
    ties = bradley_terry([(0, 1, 0.5), (1, 2, 0.5), (2, 0, 0.5)], 3)["log_strength"]
    np.testing.assert_allclose(ties, 0, atol=1e-9)
    never_loses = [(0, 1), (0, 2), (1, 2), (2, 1)]
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(never_loses, 3)
    shrunk = bradley_terry(never_loses, 3, prior=1.0)["log_strength"]
    assert shrunk[0] > shrunk[1] and np.isfinite(shrunk).all()


def test_elo_depends_on_the_order_of_games_but_bradley_terry_does_not():
    rows = _rows(simulate_raters(STRENGTHS, 600, seed=3))
    shuffled = rows[np.random.default_rng(0).permutation(len(rows))]
    elo_a, elo_b = elo(rows), elo(shuffled)
    assert np.max(np.abs(elo_a - elo_b)) > 10  # rating points; 138 measured
    assert elo_a.mean() == pytest.approx(1000) and scipy.stats.spearmanr(elo_a, STRENGTHS).statistic > 0.8
    np.testing.assert_allclose(bradley_terry(rows, 6)["log_strength"], bradley_terry(shuffled, 6)["log_strength"],
                               atol=1e-9)


def test_cohen_kappa_equals_sklearn():
    rng = np.random.default_rng(6)
    r1 = rng.integers(0, 4, 200)
    r2 = np.where(rng.random(200) < 0.6, r1, rng.integers(0, 4, 200))
    for weights in (None, "linear", "quadratic"):
        assert cohen_kappa(r1, r2, weights) == pytest.approx(cohen_kappa_score(r1, r2, weights=weights), abs=1e-12)
    words1, words2 = ["good", "bad", "good", "ok"] * 5, ["good", "good", "good", "ok"] * 5
    assert cohen_kappa(words1, words2) == pytest.approx(cohen_kappa_score(words1, words2), abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_ratings(level: str):
    rng = np.random.default_rng(7)
    data = rng.integers(1, 6, (4, 40)).astype(float)
    data[1:] = np.where(rng.random((3, 40)) < 0.6, data[0], data[1:])  # raters partly agree with rater 0
    data[rng.random(data.shape) < 0.2] = np.nan
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level=level) == pytest.approx(ref, abs=1e-9)
    assert ref > 0.2  # the agreement planted above, not chance


def test_preference_power_closed_form_matches_simulated_exact_binomial_test():
    n = preference_power(0.55)
    assert n == 783
    at_n, at_quarter = preference_power_curve([n, n // 4], p=0.55, n_sim=4000, seed=0)
    assert at_n == pytest.approx(0.8, abs=0.03)  # 0.778 measured; the exact power at 783 is 0.789
    assert at_quarter < 0.4  # 0.27 measured; the baseline: a quarter of the comparisons is badly underpowered


def test_simulated_raters_show_position_bias():
    equal = np.zeros(4)
    biased = simulate_raters(equal, 4000, position_bias=1.0, seed=0)
    fair = simulate_raters(equal, 4000, seed=0)
    assert biased["first_won"].mean() == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.03)  # 0.73
    assert abs(fair["first_won"].mean() - 0.5) < 0.03
    assert set(np.unique(biased["rater"])) == set(range(5)) and np.all(biased["first"] != biased["second"])


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="aligned"):
        bootstrap_ci((np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="paired=False"):
        permutation_test(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="level must be"):
        krippendorff_alpha(np.ones((2, 3)) + np.eye(2, 3), level="ratio")
    with pytest.raises(ValueError, match="distinct integers"):
        bradley_terry([(0, 0)], 2)
    with pytest.raises(ValueError, match="p != 0.5"):
        preference_power(0.5)
