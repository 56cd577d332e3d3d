"""Evaluation statistics: bootstrap intervals, paired tests, sample-size curves and human judgements (notebook 10).

Every function that draws random numbers takes a ``seed`` and is reproducible. Metrics computed over a corpus
(BLEU, FD) must be resampled by item and recomputed on the whole resample, never averaged per item: pass the
aligned per-item columns as a tuple to :func:`bootstrap_ci` and let ``statistic`` recompute the corpus metric.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.sparse.csgraph import connected_components

__all__ = [
    "bootstrap_ci", "bradley_terry", "cohen_kappa", "elo", "krippendorff_alpha", "paired_bootstrap",
    "permutation_test", "preference_power", "preference_power_curve", "simulate_raters", "subsample_curve",
]


# ---------------------------------------------------------------------------------------------- bootstrap
def bootstrap_ci(values: Any, statistic: Callable[..., float] = np.mean, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13) of ``statistic`` over items (notebook 10).

    ``values`` is one sequence of per-item values (``statistic(values)``), or a tuple of aligned sequences,
    e.g. ``(hypotheses, references)``: the same item indices are drawn for every column and
    ``statistic(*columns)`` is recomputed on each resample, so corpus BLEU is resampled by sentence:
    ``bootstrap_ci((hyps, refs), statistic=bleu)``. To resample anything else, pass ``np.arange(n)`` and a
    ``statistic`` that takes an index array. Returns ``{estimate, low, high}``: the statistic on all items and
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of its ``n_boot`` resampled values.
    """
    columns = _columns(values)
    _check_boot(n_boot, level)
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    boots = np.array([statistic(*_take(columns, rng.integers(0, n, n))) for _ in range(n_boot)], dtype=float)
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"estimate": float(statistic(*columns)), "low": float(low), "high": float(high)}


def paired_bootstrap(scores_a: Any, scores_b: Any, statistic: Callable[[np.ndarray], float] = np.mean,
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap (Koehn 2004) of system A minus system B, scored per item on the same items (notebook 10).

    Each resample draws the same items for both systems. Returns ``{difference, low, high, p_value}``:
    ``statistic(a) - statistic(b)`` on all items, its percentile interval, and the share of resamples in
    which A is not better (difference <= 0); Koehn calls A better "with 95% confidence" when that is < 0.05.
    """
    a, b = _vector(scores_a, "scores_a"), _vector(scores_b, "scores_b")
    if len(a) != len(b):
        raise ValueError(f"paired scores need one score per item for both systems, got {len(a)} and {len(b)}: "
                         "score both systems on the same items, in the same order.")
    _check_boot(n_boot, level)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        diffs[i] = statistic(a[idx]) - statistic(b[idx])
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": float(statistic(a) - statistic(b)), "low": float(low), "high": float(high),
            "p_value": float(np.mean(diffs <= 0))}


def permutation_test(a: Any, b: Any, paired: bool = True, n_permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided permutation p-value for a difference in means (Good 2005; as ``scipy.stats.permutation_test``).

    Paired: the statistic is mean(a - b) and the null flips the sign of each difference. Unpaired: mean(a) -
    mean(b) and the null reassigns the pooled values to groups of the same sizes. When the null has at most
    ``n_permutations`` arrangements they are all enumerated (exact p-value); otherwise ``n_permutations`` are
    drawn and p = (count + 1) / (n_permutations + 1). Two-sided p = min(1, 2 min(P(T >= t), P(T <= t))), as in
    scipy (notebook 10).
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    rng = np.random.default_rng(seed)
    if paired:
        if len(a) != len(b):
            raise ValueError(f"a paired test needs a and b of equal length, got {len(a)} and {len(b)}: pass "
                             "paired=False for two independent samples.")
        d, n = a - b, len(a)
        exact = n < 63 and 2**n <= n_permutations
        if exact:  # every sign vector: bit j of row i gives the sign of difference j
            signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        else:
            signs = rng.choice([-1, 1], size=(n_permutations, n))
        observed, null = d.mean(), (signs * d).mean(axis=1)
    else:
        pooled, n_a = np.concatenate([a, b]), len(a)
        exact = math.comb(len(pooled), n_a) <= n_permutations
        if exact:  # every choice of which pooled values form group a
            mask = np.zeros((math.comb(len(pooled), n_a), len(pooled)), dtype=bool)
            for row, chosen in enumerate(itertools.combinations(range(len(pooled)), n_a)):
                mask[row, list(chosen)] = True
        else:
            mask = rng.permuted(np.tile(np.arange(len(pooled)) < n_a, (n_permutations, 1)), axis=1)
        observed = a.mean() - b.mean()
        null = (mask @ pooled) / n_a - (~mask @ pooled) / len(b)
    gamma = 1e-14 * max(abs(observed), 1.0)  # ties within rounding count as ties, as in scipy
    greater, less = np.sum(null >= observed - gamma), np.sum(null <= observed + gamma)
    adjust = 0 if exact else 1
    p_greater, p_less = (greater + adjust) / (len(null) + adjust), (less + adjust) / (len(null) + adjust)
    return float(min(1.0, 2 * min(p_greater, p_less)))


def subsample_curve(metric: Callable[[Any], float], items: Sequence[Any], sizes: Sequence[int],
                    repeats: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean and std of ``metric`` on ``repeats`` random subsets (without replacement) of each size (notebook 10).

    Shows how a metric's value and spread depend on the number of samples (FD and BLEU are biased at small N).
    Returns ``{size, mean, std}`` arrays; ``metric`` gets a list (or an array if ``items`` is one).
    """
    if isinstance(items, str) or len(items) < 1:
        raise ValueError("items must be a non-empty sequence of items (e.g. a list of texts), not one string.")
    if repeats < 1 or not sizes or any(not 1 <= s <= len(items) for s in sizes):
        raise ValueError(f"need repeats >= 1 and every size in 1..{len(items)} (the number of items), got "
                         f"repeats={repeats}, sizes={list(sizes)}.")
    rng = np.random.default_rng(seed)
    scores = np.array([[metric(_take((items,), rng.choice(len(items), s, replace=False))[0])
                        for _ in range(repeats)] for s in sizes], dtype=float)
    return {"size": np.asarray(sizes), "mean": scores.mean(axis=1), "std": scores.std(axis=1, ddof=1)
            if repeats > 1 else np.zeros(len(sizes))}


# ----------------------------------------------------------------------------------------- human judgements
def bradley_terry(comparisons: Any, n_items: int, prior: float = 0.0, max_iter: int = 10_000, tol: float = 1e-10,
                  n_boot: int = 0, level: float = 0.95, seed: int = 0) -> dict[str, np.ndarray | None]:
    """Bradley-Terry log-strengths from pairwise comparisons by Hunter's (2004) MM algorithm (notebook 10).

    ``comparisons``: rows ``(winner, loser)`` or ``(a, b, a_won)`` with ``a_won`` 1, 0 or 0.5 (a tie, counted
    as half a win for each). Model: P(i beats j) = g_i / (g_i + g_j). ``prior`` > 0 adds that many virtual wins
    and losses of each item against a virtual item of strength 1 (a MAP estimate that exists for any data);
    with ``prior=0`` the comparison graph must be strongly connected (Hunter's condition). Returns
    ``{log_strength, low, high}``: log g centred to mean 0, and with ``n_boot`` > 0 percentile intervals from
    refits on resampled comparisons (refits use a prior of at least 0.01); otherwise low/high are None.
    """
    i, j, w = _outcomes(comparisons, n_items)
    log_strength = _bt_fit(i, j, w, n_items, prior, max_iter, tol)
    low = high = None
    if n_boot > 0:
        _check_boot(n_boot, level)
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(n_boot):
            idx = rng.integers(0, len(i), len(i))
            boots.append(_bt_fit(i[idx], j[idx], w[idx], n_items, max(prior, 0.01), max_iter, tol))
        low, high = np.quantile(np.array(boots), [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {"log_strength": log_strength, "low": low, "high": high}


def _bt_fit(i: np.ndarray, j: np.ndarray, w: np.ndarray, n_items: int, prior: float, max_iter: int,
            tol: float) -> np.ndarray:
    wins = np.zeros((n_items, n_items))  # wins[a, b]: times a beat b (ties add 0.5 to both)
    np.add.at(wins, (i, j), w)
    np.add.at(wins, (j, i), 1 - w)
    if prior == 0 and n_items > 1 and connected_components(wins > 0, connection="strong")[0] > 1:
        raise ValueError("the comparisons do not connect every item both ways (some item never wins or never "
                         "loses against the rest), so the Bradley-Terry maximum does not exist: pass prior=0.1 "
                         "or collect more comparisons.")
    games = wins + wins.T  # N_ab: comparisons between a and b
    total_wins = wins.sum(axis=1) + prior
    g = np.ones(n_items)
    for _ in range(max_iter):
        # Hunter (2004) eq. 3: g_a <- W_a / sum_b N_ab / (g_a + g_b), plus the prior's 2*prior games vs g = 1
        g_new = total_wins / ((games / (g[:, None] + g[None, :])).sum(axis=1) + 2 * prior / (g + 1))
        g_new /= np.exp(np.log(g_new).mean())  # fix the scale: geometric mean 1
        done = np.max(np.abs(np.log(g_new) - np.log(g))) < tol
        g = g_new
        if done:
            break
    log_g = np.log(g)
    return log_g - log_g.mean()


def elo(comparisons: Any, n_items: int | None = None, k: float = 32.0, initial: float = 1000.0,
        scale: float = 400.0) -> np.ndarray:
    """Sequential Elo ratings (Elo 1978): each game moves both ratings by k (S - E) (notebook 10).

    E = 1 / (1 + 10^((R_b - R_a) / scale)) is the expected score of a; the result depends on the order of the
    games, unlike :func:`bradley_terry` on the same games. Rows as in :func:`bradley_terry`.
    """
    n_items = n_items if n_items is not None else int(np.max(_outcome_columns(comparisons)[:2])) + 1
    i, j, w = _outcomes(comparisons, n_items)
    ratings = np.full(n_items, float(initial))
    for a, b, s in zip(i.tolist(), j.tolist(), w.tolist()):
        expected = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / scale))
        ratings[a] += k * (s - expected)
        ratings[b] -= k * (s - expected)
    return ratings


def cohen_kappa(rater1: Sequence[Any], rater2: Sequence[Any], weights: str | None = None) -> float:
    """Cohen's (1960) kappa of two raters' labels on the same items, as ``sklearn.metrics.cohen_kappa_score``.

    kappa = (p_o - p_e) / (1 - p_e) = 1 - sum(w * observed) / sum(w * expected); ``weights`` None, "linear" or
    "quadratic" (weighted kappa, Cohen 1968) for ordered labels (notebook 10).
    """
    r1, r2 = np.asarray(rater1), np.asarray(rater2)
    if r1.ndim != 1 or r1.shape != r2.shape or len(r1) == 0:
        raise ValueError(f"need two 1-D label sequences of equal, non-zero length (one label per item from each "
                         f"rater), got shapes {r1.shape} and {r2.shape}.")
    labels, codes = np.unique(np.concatenate([r1, r2]), return_inverse=True)
    observed = np.zeros((len(labels), len(labels)))
    np.add.at(observed, (codes[:len(r1)], codes[len(r1):]), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    distance = np.abs(np.subtract.outer(np.arange(len(labels)), np.arange(len(labels)))).astype(float)
    weight = {None: (distance > 0).astype(float), "linear": distance, "quadratic": distance**2}.get(weights)
    if weight is None:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}.")
    return float(1 - (weight * observed).sum() / (weight * expected).sum())


def krippendorff_alpha(data: Any, level: str = "nominal") -> float:
    """Krippendorff's (2011) alpha for any number of raters, with NaN for missing ratings (notebook 10).

    ``data``: raters x units (the ``krippendorff`` package's ``reliability_data`` layout). alpha = 1 - D_o / D_e
    from the coincidence matrix o_ck = sum_u (pairs of values c, k in unit u) / (m_u - 1) over units rated at
    least twice; metric delta^2: nominal [c != k], ordinal (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2, interval
    (c - k)^2. Pass ``level`` explicitly: the ``krippendorff`` package defaults to interval.
    """
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"data must be a 2-D array of raters x units (NaN where a rater skipped a unit), got "
                         f"shape {x.shape}.")
    values, codes = np.unique(x[~np.isnan(x)], return_inverse=True)
    counts = np.zeros((x.shape[1], len(values)))  # counts[u, c]: raters who gave unit u value c
    np.add.at(counts, np.nonzero(~np.isnan(x))[1], np.eye(len(values))[codes])
    counts = counts[counts.sum(axis=1) >= 2]  # only pairable units
    if len(values) < 2 or len(counts) == 0:
        raise ValueError("alpha needs at least one unit rated twice and at least two distinct values overall.")
    per_unit = counts / (counts.sum(axis=1, keepdims=True) - 1)
    coincidence = per_unit.T @ counts - np.diag(per_unit.sum(axis=0))  # o_ck
    n_c = coincidence.sum(axis=1)
    if level == "nominal":
        delta2 = 1.0 - np.eye(len(values))
    elif level == "interval":
        delta2 = np.subtract.outer(values, values) ** 2
    elif level == "ordinal":
        mid = np.cumsum(n_c) - n_c / 2  # sum_{g<=c} n_g - n_c / 2
        delta2 = np.subtract.outer(mid, mid) ** 2
    else:
        raise ValueError(f"level must be 'nominal', 'ordinal' or 'interval', got {level!r}.")
    n = n_c.sum()
    d_observed = (coincidence * delta2).sum() / n
    d_expected = (np.outer(n_c, n_c) * delta2).sum() / (n * (n - 1))
    return float(1 - d_observed / d_expected)


def preference_power(p: float = 0.55, alpha: float = 0.05, power: float = 0.8) -> int:
    """Comparisons needed to tell a win rate ``p`` from 0.5 with a two-sided test (normal approximation).

    n = ((z_{1-alpha/2} sqrt(p0 q0) + z_{power} sqrt(p q)) / (p - p0))^2 with p0 = 0.5 (Fleiss et al. 2003,
    eq. 2.5), rounded up; check it with :func:`preference_power_curve` (notebook 10).
    """
    if not (0 < p < 1 and p != 0.5 and 0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"need 0 < p < 1 with p != 0.5, and alpha and power in (0, 1), got p={p}, "
                         f"alpha={alpha}, power={power}.")
    z = NormalDist().inv_cdf
    n = ((z(1 - alpha / 2) * 0.5 + z(power) * math.sqrt(p * (1 - p))) / (p - 0.5)) ** 2
    return math.ceil(n)


def preference_power_curve(ns: Sequence[int], p: float = 0.55, alpha: float = 0.05, n_sim: int = 2000,
                           seed: int = 0) -> np.ndarray:
    """Simulated power of the exact two-sided binomial test (``scipy.stats.binomtest``) at each n (notebook 10).

    Each of ``n_sim`` experiments draws n comparisons won with probability ``p`` and rejects p = 0.5 when the
    test's p-value is below ``alpha``; the power is the share rejected.
    """
    from scipy.stats import binomtest

    if not ns or any(n < 1 for n in ns) or n_sim < 1:
        raise ValueError(f"need a non-empty list of positive sizes and n_sim >= 1, got ns={list(ns)}, "
                         f"n_sim={n_sim}.")
    rng = np.random.default_rng(seed)
    power = []
    for n in ns:  # the test only depends on the number of wins k: decide every k once
        reject = np.array([binomtest(k, n, 0.5).pvalue < alpha for k in range(n + 1)])
        power.append(reject[rng.binomial(n, p, n_sim)].mean())
    return np.array(power)


def simulate_raters(strengths: Any, n_comparisons: int, n_raters: int = 5, noise: float = 0.0,
                    position_bias: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Simulated pairwise judgements from raters with noise and position bias, for headless runs (notebook 10).

    Each comparison shows two distinct random items in random order to a random rater. Rater r sees log-
    strengths ``strengths + noise * z_r`` (z_r ~ N(0, I), fixed per rater) and picks the item shown first with
    P = sigmoid(s_first - s_second + position_bias). Returns arrays ``first``, ``second``, ``first_won``
    (1/0), ``rater``; ``np.column_stack([first, second, first_won])`` feeds :func:`bradley_terry`.
    """
    s = _vector(strengths, "strengths")
    if len(s) < 2 or n_comparisons < 1 or n_raters < 1 or noise < 0:
        raise ValueError(f"need >= 2 strengths, n_comparisons >= 1, n_raters >= 1 and noise >= 0, got "
                         f"{len(s)}, {n_comparisons}, {n_raters}, {noise}.")
    rng = np.random.default_rng(seed)
    seen = s + noise * rng.standard_normal((n_raters, len(s)))  # each rater's view of the strengths
    first = rng.integers(0, len(s), n_comparisons)
    second = (first + rng.integers(1, len(s), n_comparisons)) % len(s)  # any item but `first`
    rater = rng.integers(0, n_raters, n_comparisons)
    logit = seen[rater, first] - seen[rater, second] + position_bias
    first_won = (rng.random(n_comparisons) < 1 / (1 + np.exp(-logit))).astype(int)
    return {"first": first, "second": second, "first_won": first_won, "rater": rater}


# ------------------------------------------------------------------------------------------------- helpers
def _vector(x: Any, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers (one per item), got shape "
                         f"{v.shape}{' with NaN/inf' if v.size and not np.isfinite(v).all() else ''}.")
    return v


def _columns(values: Any) -> tuple[Any, ...]:
    columns = values if isinstance(values, tuple) else (values,)
    if any(isinstance(c, str) or not hasattr(c, "__len__") for c in columns):
        raise ValueError("values must be a sequence of per-item values or a tuple of aligned sequences "
                         "(e.g. (hypotheses, references)), not a single string or number.")
    if len({len(c) for c in columns}) != 1 or len(columns[0]) == 0:
        raise ValueError(f"the columns must be non-empty and aligned (one entry per item), got lengths "
                         f"{[len(c) for c in columns]}.")
    return columns


def _take(columns: tuple[Any, ...], idx: np.ndarray) -> tuple[Any, ...]:
    return tuple(c[idx] if isinstance(c, np.ndarray) else [c[k] for k in idx.tolist()] for c in columns)


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1 (e.g. 2000 and 0.95), got {n_boot} and {level}.")


def _outcome_columns(comparisons: Any) -> np.ndarray:
    rows = np.asarray(comparisons, dtype=float)
    if rows.ndim != 2 or rows.shape[1] not in (2, 3) or len(rows) == 0:
        raise ValueError(f"comparisons must be rows (winner, loser) or (a, b, a_won), got shape {rows.shape}.")
    return rows.T


def _outcomes(comparisons: Any, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cols = _outcome_columns(comparisons)
    i, j = cols[0].astype(int), cols[1].astype(int)
    w = cols[2] if len(cols) == 3 else np.ones(len(i))
    if min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n_items or np.any(i == j):
        raise ValueError(f"item ids must be distinct integers in 0..{n_items - 1} (n_items={n_items}) within each "
                         "comparison.")
    if not np.isin(w, (0.0, 0.5, 1.0)).all():
        raise ValueError("a_won must be 1 (a won), 0 (b won) or 0.5 (a tie).")
    return i, j, w
