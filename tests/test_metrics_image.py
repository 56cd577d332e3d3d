"""Image metrics beyond FD: KID and IS against torchmetrics, PRDC against closed forms, FD_inf, CLIP offline."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.metrics.image import (
    clip_score,
    density_coverage,
    frechet_distance_extrapolated,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: one thread (tests/conftest.py)


def _gaussians(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _torchmetrics_kid(real, fake, seed, **settings):
    with warnings.catch_warnings():  # "will save all extracted features in buffer"
        warnings.simplefilter("ignore")
        kid = KernelInceptionDistance(feature=nn.Identity(), **settings)  # the features are the inputs
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(seed)  # torchmetrics draws each subset with torch.randperm on the global generator
    return tuple(float(v) for v in kid.compute())


def _torchmetrics_is(logits, splits, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = InceptionScore(feature=nn.Identity(), splits=splits)  # the "features" are the logits
    metric.update(logits)
    torch.manual_seed(seed)  # torchmetrics shuffles the rows with torch.randperm(N) before splitting
    return tuple(float(v) for v in metric.compute())


# ---------------------------------------------------------------------------------------------------- KID
@pytest.mark.parametrize("settings", [{"subsets": 20, "subset_size": 200},
                                      {"subsets": 5, "subset_size": 300, "degree": 2, "gamma": 0.1, "coef": 0.5}])
def test_kid_equals_torchmetrics_subset_by_subset_under_the_same_seed(settings):
    real, fake = _gaussians(0, 600, 32), _gaussians(1, 500, 32) * 1.2 + 0.1
    # Compared: mean AND std over random subsets, with the subsets themselves identical (our generator seeded
    # with `seed` replays torchmetrics' torch.randperm calls after torch.manual_seed(seed), in the same
    # real/fake order). float64 features, so torchmetrics computes in float64 too: only summation order
    # differs (measured 1.6e-15 and 8.6e-15 relative).
    ours = kernel_inception_distance(real, fake, seed=7, **settings)
    ref = _torchmetrics_kid(real, fake, seed=7, **settings)
    assert ours == pytest.approx(ref, rel=1e-10)
    assert ours[0] > 3 * ours[1] > 0  # a real difference: the shift is above the subset noise (4.7x)
    assert kernel_inception_distance(real, fake, seed=8, **settings) != pytest.approx(ours, rel=1e-6)


def test_kid_per_subset_mmd_equals_torchmetrics_poly_mmd_without_sampling():
    real, fake = _gaussians(2, 300, 16), _gaussians(3, 300, 16) + 0.2
    # One subset holding every sample: no randomness, so this compares the unbiased MMD^2 estimator alone
    for degree, gamma, coef in ((3, None, 1.0), (2, 0.5, 2.0)):
        ref = float(poly_mmd(real, fake, degree, gamma, coef))
        mean, std = kernel_inception_distance(real, fake, subsets=1, subset_size=300, degree=degree,
                                              gamma=gamma, coef=coef)
        assert mean == pytest.approx(ref, rel=1e-10) and std == 0.0


def test_kid_float32_features_match_torchmetrics_to_float32_precision():
    real, fake = _gaussians(4, 400, 16).float(), (_gaussians(5, 400, 16) * 1.3).float()
    ours = kernel_inception_distance(real, fake, subsets=10, subset_size=100, seed=3)  # computed in float64
    ref = _torchmetrics_kid(real, fake, seed=3, subsets=10, subset_size=100)  # float32: 1.2e-6 apart
    assert ours == pytest.approx(ref, rel=1e-4)


def test_kid_is_near_zero_for_one_distribution_and_rejects_too_few_samples():
    a, b = _gaussians(6, 1000, 16), _gaussians(7, 1000, 16)
    same = kernel_inception_distance(a, b, subsets=10, subset_size=500)
    shifted = kernel_inception_distance(a, b + 0.3, subsets=10, subset_size=500)
    assert abs(same[0]) < 0.1 * shifted[0]
    with pytest.raises(ValueError, match="subset_size=1000 is larger than the number of samples"):
        kernel_inception_distance(a[:999], b)
    with pytest.raises(ValueError, match="same network"):
        kernel_inception_distance(a, b[:, :8], subset_size=100)


# ----------------------------------------------------------------------------------------- Inception score
@pytest.mark.parametrize("n, splits", [(1000, 10), (1003, 10), (50, 7)])
def test_inception_score_equals_torchmetrics_on_its_shuffled_rows(n, splits):
    logits = _gaussians(8, n, 10) * 3
    # Compared: mean and std over splits. torchmetrics shuffles with torch.randperm(N) after
    # torch.manual_seed(seed); we pass the rows in that same order, so the splits (torch.chunk, uneven when
    # N is not divisible) are identical. float64 logits: measured difference <= 9.3e-16 relative.
    ref = _torchmetrics_is(logits, splits, seed=3)
    torch.manual_seed(3)
    ours = inception_score(logits[torch.randperm(n)], splits)
    assert ours == pytest.approx(ref, rel=1e-10)


@pytest.mark.filterwarnings("ignore:std\\(\\)")  # torchmetrics' std of one split is NaN, with a warning
def test_inception_score_with_one_split_equals_torchmetrics_and_the_closed_forms():
    logits = _gaussians(9, 300, 6) * 2
    assert inception_score(logits, 1)[0] == pytest.approx(_torchmetrics_is(logits, 1, seed=0)[0], rel=1e-12)
    # confident and perfectly balanced over K classes: IS = K; uniform predictions: IS = 1
    confident = 50 * nn.functional.one_hot(torch.arange(320) % 8, 8).double()  # 4 chunks of 10 per class
    assert inception_score(confident, 4) == pytest.approx((8.0, 0.0), abs=1e-9)
    assert inception_score(torch.zeros(100, 8), 2) == pytest.approx((1.0, 0.0), abs=1e-12)
    # the same confident predictions, all of one class (mode collapse): IS = 1
    assert inception_score(confident[::8], 2)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_rejects_bad_logits():
    with pytest.raises(ValueError, match="K >= 2"):
        inception_score(torch.randn(10, 1))
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.randn(5, 3), splits=10)
    with pytest.raises(ValueError, match="NaN"):
        inception_score(torch.full((20, 3), float("nan")), splits=2)
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        inception_score(torch.randn(20))


# ------------------------------------------------------------------------------ precision/recall, density/coverage
def test_prdc_on_a_hand_computed_1d_case():
    real = torch.tensor([[0.0], [1.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0], [5.0]])
    # k = 1 radii: real 0 -> 1, 1 -> 1, 3 -> 2; fake 0.5 -> 4.5, 10 -> 5, 5 -> 4.5.
    # precision: 0.5 is in the balls of 0 and 1; 5 is at distance exactly 2 from 3, inside its closed ball;
    # 10 is in none -> 2/3. recall: every real point lies within 4.5 of 0.5 -> 1.
    assert precision_recall(real, fake, k=1) == pytest.approx({"precision": 2 / 3, "recall": 1.0})
    # density counts open balls: 0.5 sits in 2 (0's and 1's), 5 and 10 in none -> (2 + 0 + 0) / (1 * 3);
    # coverage: the nearest fake of 0 and 1 is 0.5 < 1; of 3 it is 5, at distance 2, not < 2 -> 2/3
    assert density_coverage(real, fake, k=1) == pytest.approx({"density": 2 / 3, "coverage": 2 / 3})
    # swapping the sets swaps precision and recall (both use closed k-NN balls of their own set)
    assert precision_recall(fake, real, k=1) == pytest.approx({"precision": 1.0, "recall": 2 / 3})
    a, b = _gaussians(20, 300, 8), _gaussians(21, 200, 8) * 1.5
    assert precision_recall(a, b)["recall"] == precision_recall(b, a)["precision"]  # 0.993
    assert precision_recall(a, b)["precision"] == precision_recall(b, a)["recall"] < 0.6  # 0.45: wider fakes


def test_density_and_coverage_of_one_distribution_meet_naeem_et_al_expectations():
    n, k = 2000, 5
    real, fake = _gaussians(10, n, 16), _gaussians(11, n, 16)
    # E[density] = 1; E[coverage] = 1 - prod_{i=1..k} (N - i) / (2N - i) = 0.9689 (about 1 - 2^-k) for M = N
    expected = 1 - math.prod((n - i) / (2 * n - i) for i in range(1, k + 1))
    got = density_coverage(real, fake, k)
    assert got["density"] == pytest.approx(1.0, abs=0.08)  # 0.98..1.04 measured over 4 seeds
    assert got["coverage"] == pytest.approx(expected, abs=0.015)  # 0.967..0.976 measured over 4 seeds
    pr = precision_recall(real, fake)
    assert pr["precision"] > 0.7 and pr["recall"] > 0.7  # 0.77..0.80 measured in 16 dims


def test_prdc_tell_disjoint_sets_and_mode_collapse():
    real, fake = _gaussians(12, 1000, 16), _gaussians(13, 1000, 16)
    assert precision_recall(real, fake + 20) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, fake + 20) == {"density": 0.0, "coverage": 0.0}
    collapsed = fake * 0.2  # every fake near the real mode: realistic but not varied
    pr, dc = precision_recall(real, collapsed), density_coverage(real, collapsed)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.05
    assert dc["density"] > 1.5 and dc["coverage"] < 0.6  # 11.7 and 0.55, against 1.0 and 0.97 above


def test_prdc_chunks_give_the_same_answer(monkeypatch):
    from aigc_lib.metrics import image
    real, fake = _gaussians(14, 300, 8), _gaussians(15, 200, 8) * 0.8
    whole = precision_recall(real, fake), density_coverage(real, fake)
    monkeypatch.setattr(image, "_CHUNK_ELEMENTS", 4000)  # 13 to 20 rows per chunk
    assert (precision_recall(real, fake), density_coverage(real, fake)) == whole


def test_prdc_reject_bad_inputs():
    with pytest.raises(ValueError, match="at least 4 samples"):
        precision_recall(torch.randn(3, 4), torch.randn(10, 4), k=3)
    with pytest.raises(ValueError, match="integer >= 1"):
        density_coverage(torch.randn(10, 4), torch.randn(10, 4), k=0)
    with pytest.raises(ValueError, match="same network"):
        density_coverage(torch.randn(10, 4), torch.randn(10, 5), k=2)


# ------------------------------------------------------------------------------------------------ FD infinity
def test_fd_extrapolated_removes_the_1_over_n_bias_of_one_distribution():
    f = 16
    real, fake = _gaussians(16, 4000, f), _gaussians(17, 4000, f)
    out = frechet_distance_extrapolated(real, fake)
    sizes = sorted({n for n, _ in out["points"]})
    fd_small = [fd for n, fd in out["points"] if n == sizes[0]]
    assert min(fd_small) > 0.15  # FD at N = 800 is clearly positive for one distribution
    assert abs(out["fd_infinity"]) < 0.1 * min(fd_small)  # and its extrapolation is ~0 (-0.003 measured)
    # two N-samples of N(0, I_F): E[FD] ~ (2F + F(F+1)/2) / N = 168 / N (mean term + covariance term),
    # so FD * N is about constant; measured slope 173..192 over 4 seeds
    c = 2 * f + f * (f + 1) / 2
    assert out["slope"] == pytest.approx(c, rel=0.2)
    for n in sizes:
        mean_fd = sum(fd for m, fd in out["points"] if m == n) / sum(m == n for m, _ in out["points"])
        assert mean_fd * n == pytest.approx(c, rel=0.35)


def test_fd_extrapolated_recovers_a_known_mean_shift_and_rejects_bad_sizes():
    # true FD = ||mu||^2 = 16 * 0.25^2 = 1. One pair of finite sets misses it by up to ~0.15 whatever N
    # (the mean term's noise; measured 0.82..1.13), so average fd_infinity over 6 independent pairs: unbiased,
    # it lands near 1 (0.99..1.02 measured for 4 batches of seeds) while FD at N = 400 stays ~0.4 too high
    fd_inf, fd_400 = [], []
    for seed in range(20, 32, 2):
        real, fake = _gaussians(seed, 2000, 16), _gaussians(seed + 1, 2000, 16) + 0.25
        out = frechet_distance_extrapolated(real, fake)  # 8 sizes from 400 to 2000, 2 draws each
        assert len(out["points"]) == 16
        fd_inf.append(out["fd_infinity"])
        fd_400.append(sum(fd for n, fd in out["points"] if n == 400) / 2)
    assert sum(fd_inf) / 6 == pytest.approx(1.0, abs=0.06)
    assert sum(fd_400) / 6 > 1.3
    with pytest.raises(ValueError, match="at least 2 distinct sizes"):
        frechet_distance_extrapolated(real, fake, sizes=(500, 5000))
    with pytest.raises(ValueError, match="at least 2 distinct sizes"):
        frechet_distance_extrapolated(real, fake, sizes=(500,))


# ------------------------------------------------------------------------------------------------ CLIP score
def test_clip_score_offline_points_to_the_judge_prompt_accuracy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ModelNotAvailableError, match="prompt accuracy"):
        clip_score(images, ["a red circle", "a blue square"])
    with pytest.raises(ValueError, match="one text prompt per image"):
        clip_score(images, ["a red circle"])
    with pytest.raises(ValueError, match="one text prompt per image"):
        clip_score(images, "a red circle")
