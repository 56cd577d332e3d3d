"""Image metrics: Frechet distance against closed forms, class coverage, the offline judge and its cache."""
from __future__ import annotations

import pytest
import scipy.linalg
import torch

from aigc_lib import metrics
from aigc_lib.data import make_font_digits, make_shapes
from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.metrics import (
    ClassifierConfig,
    ImageClassifier,
    ImageJudge,
    class_coverage,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    inception_fd,
    real_baseline_fd,
)

DIGITS = dict(steps=100, batch_size=64, lr=5e-3, seed=0, name="digits-test")  # the tests' judge settings


# ------------------------------------------------------------------------------------------ Frechet distance
def test_frechet_distance_is_zero_for_identical_sets_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 16, generator=g), torch.randn(400, 16, generator=g) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 1


def test_frechet_distance_from_stats_matches_the_closed_form_for_diagonal_gaussians():
    g = torch.Generator().manual_seed(1)
    mu_a, mu_b, s_a, s_b = torch.rand(4, 8, generator=g, dtype=torch.float64)
    mu_b, s_a, s_b = mu_b * 2, s_a + 0.1, s_b * 3 + 0.1
    # diagonal covariances commute: d^2 = ||mu_a - mu_b||^2 + sum_i (sqrt(s_a,i) - sqrt(s_b,i))^2
    expected = float((mu_a - mu_b).square().sum() + (s_a.sqrt() - s_b.sqrt()).square().sum())
    got = frechet_distance_from_stats(mu_a, torch.diag(s_a), mu_b, torch.diag(s_b))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_from_stats_matches_scipy_sqrtm_for_full_covariances():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 6, 6, generator=g, dtype=torch.float64)
    s_a, s_b, mu_a, mu_b = x @ x.T + 0.1 * torch.eye(6), y @ y.T, torch.zeros(6), torch.ones(6)
    sqrt = scipy.linalg.sqrtm((s_a @ s_b).numpy()).real  # the reference FID code's matrix square root
    expected = 6 + float(s_a.trace() + s_b.trace()) - 2 * float(sqrt.trace())
    assert frechet_distance_from_stats(mu_a, s_a, mu_b, s_b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_samples_approaches_the_closed_form_and_grows_with_the_mean_shift():
    g = torch.Generator().manual_seed(3)
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([1.0, 1.0, 1.0, 3.0])
    a = torch.randn(20000, 4, generator=g) * std_a
    b = torch.randn(20000, 4, generator=g) * std_b
    for shift in (0.0, 1.0, 2.0):
        expected = 4 * shift**2 + float((std_a - std_b).square().sum())  # 0 + 1 + 0.25 + 4 = 5.25 at shift 0
        assert frechet_distance(a, b + shift) == pytest.approx(expected, rel=0.03, abs=0.03)
    assert frechet_distance(a, a + 0.5) < frechet_distance(a, a + 1) < frechet_distance(a, a + 2)
    mu, sigma = feature_stats(a)
    assert mu.dtype == torch.float64 and sigma.shape == (4, 4)


def test_frechet_distance_rejects_too_few_samples_and_mismatched_dims():
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(ValueError, match="same F"):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((10, 4), float("nan")), torch.randn(10, 4))


# --------------------------------------------------------------------------------------------- coverage
def test_class_coverage_tells_a_uniform_labelling_from_a_collapsed_one():
    uniform = class_coverage(torch.arange(1000) % 10, 10)
    assert (uniform.covered, uniform.num_classes) == (10, 10)
    assert uniform.entropy == pytest.approx(1.0) and uniform.max_share == pytest.approx(0.1)
    collapsed = class_coverage(torch.tensor([3] * 600 + [7] * 400), 10)
    assert collapsed.covered == 2 and collapsed.entropy < 0.35 and collapsed.max_share == pytest.approx(0.6)
    assert collapsed.histogram[3] == 600 and sum(collapsed.histogram) == 1000
    # fair share is N / K = 10 images: class 1 with 3 (>= 0.25 * 10) counts, class 2 with 2 does not
    skewed = class_coverage(torch.tensor([0] * 95 + [1] * 3 + [2] * 2), 10)
    assert skewed.covered == 2
    with pytest.raises(ValueError, match="0..9"):
        class_coverage(torch.tensor([0, 10]), 10)


# --------------------------------------------------------------------------------------------- judge
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convs: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def digits():
    return make_font_digits(n=1200, size=28, seed=0)


@pytest.fixture(scope="module")
def held_out():
    return make_font_digits(n=600, size=28, seed=1)  # a different seed: images the judge never saw


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("judges")


@pytest.fixture(scope="module")
def judge(digits, judge_cache):
    return ImageJudge.train(digits, cache_dir=judge_cache, **DIGITS)


def test_classifier_resizes_any_input_and_has_one_head_per_attribute():
    model = ImageClassifier(ClassifierConfig(3, (("color", 6), ("shape", 6), ("position", 9))))
    for size in (28, 32, 64):
        out = model(torch.rand(2, 3, size, size) * 2 - 1)
        assert {k: v.shape for k, v in out.items()} == {"color": (2, 6), "shape": (2, 6), "position": (2, 9)}
    assert model.features(torch.zeros(2, 3, 28, 28)).shape == (2, 128)


def test_judge_learns_digits(judge):
    # measured: 92.5% test accuracy (120 held-out images; 95.7% on 600 new ones) after 100 steps of 64
    assert judge.accuracy["class"] > 0.85
    assert judge.classes["class"] == [str(d) for d in range(10)]
    assert not judge.loaded_from_cache


def test_judge_fd_ranks_real_far_below_noise_and_blank(judge, held_out):
    real_a, real_b = held_out.images[:300], held_out.images[300:]
    real = judge.fd(real_a, real_b)
    noise = judge.fd(torch.rand(300, 1, 28, 28) * 2 - 1, real_b)
    blank = judge.fd(torch.full((300, 1, 28, 28), -1.0), real_b)
    # measured: real 0.67, noise 42, blank 81 (real baselines 0.55 and 0.47)
    assert real < noise / 10 and real < blank / 10
    baseline = [real_baseline_fd(judge, held_out.images, 300, seed=seed) for seed in (0, 1)]
    assert baseline[0] != baseline[1] and max(baseline) < noise / 10  # random disjoint halves, both close
    with pytest.raises(ValueError, match="2 \\* n"):
        real_baseline_fd(judge, held_out.images, 301)


def test_judge_coverage_is_full_on_real_digits_and_low_on_one_class(judge, held_out):
    real = judge.evaluate(held_out.images[:300], held_out.images[300:])
    assert (real["coverage"], real["num_classes"]) == (10, 10) and real["entropy"] > 0.95
    sevens = held_out.images[held_out.labels == 7]
    collapsed = judge.evaluate(sevens, held_out.images[300:])
    assert collapsed["coverage"] <= 2 and collapsed["max_share"] > 0.8 and collapsed["entropy"] < 0.4
    assert collapsed["fd"] > 5 * real["fd"]
    assert 0 < real["confidence"] <= 1
    probs = judge.probabilities(held_out.images[:5])
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    assert torch.equal(judge.predict(held_out.images[:5]), probs.argmax(1))


def test_judge_features_are_batch_independent_and_check_channels(judge, held_out):
    x = held_out.images[:64]
    whole, parts = judge.features(x), judge.features(x, batch_size=5)
    assert whole.shape == (64, 128) and whole.dtype == torch.float32 and whole.device.type == "cpu"
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="1-channel"):
        judge.features(torch.zeros(2, 3, 28, 28))


def test_judge_cache_round_trip_loads_without_training(judge, digits, held_out, judge_cache, capsys):
    files = sorted(p.suffix for p in judge_cache.iterdir())
    assert files == [".json", ".safetensors"]  # atomic writes leave no temp files behind
    again = ImageJudge.train(digits, cache_dir=judge_cache, **DIGITS)
    assert again.loaded_from_cache and "loaded cached judge 'digits-test'" in capsys.readouterr().out
    assert again.accuracy == pytest.approx(judge.accuracy) and again.classes == judge.classes
    torch.testing.assert_close(again.features(held_out.images[:32]), judge.features(held_out.images[:32]))


# ------------------------------------------------------------------------------------------- prompt accuracy
def test_prompt_accuracy_of_a_multi_head_judge_on_shapes():
    data = make_shapes(n=900, size=32, seed=0)
    judge = ImageJudge.train(data, dict(data.attributes), steps=80, batch_size=64, lr=5e-3, cache_dir=None,
                             name="shapes")
    assert judge.classes["color"][0] == "red" and judge.config.heads[2] == ("position", 9)
    held = make_shapes(n=300, size=32, seed=1)
    right = judge.prompt_accuracy(held.images, held.attributes)
    # measured: color 1.00, position 0.99, shape 0.44 (chance 1/6; shape is the slow head), all 0.44
    assert right["color"] > 0.9 and right["position"] > 0.9 and right["shape"] > 0.3
    assert right["all"] <= min(right["color"], right["shape"], right["position"]) + 1e-9
    shuffle = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    wrong = {k: v[shuffle] for k, v in held.attributes.items()}
    assert judge.prompt_accuracy(held.images, wrong)["all"] < 0.05  # prompts that do not match the images
    with pytest.raises(ValueError, match="no head 'size'"):
        judge.prompt_accuracy(held.images, {"size": held.labels})


# --------------------------------------------------------------------------------------------- Inception
def test_inception_fid_offline_says_what_to_do_instead(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache: no Inception weights here
    metrics.image._inception.cache_clear()
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ModelNotAvailableError, match="FID needs the Inception weights.*FD-digits"):
        inception_fd(images, images)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        metrics.inception_features(torch.zeros(2, 2, 28, 28))
