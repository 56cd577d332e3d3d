"""The cached DCGAN of chapter 03 (aigc_lib.gan_build): built once, cached, loaded, better than untrained, truncated."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from aigc_lib import data, gan_build
from aigc_lib.gan import build_gan
from aigc_lib.gan_build import (
    DCGAN_RECIPES,
    build_dcgan,
    load_dcgan,
    sample_dcgan,
    train_dcgan,
    truncated_latents,
)
from aigc_lib.metrics import ImageJudge

SMOKE = DCGAN_RECIPES["smoke"]
N_FD = 128  # notebook 03's smoke N




@pytest.fixture(scope="module")
def built(one_thread, tmp_path_factory):
    """(cache root, folder, {"final": G, "early": G} as trained): the smoke recipe built once (~4 s)."""
    root = tmp_path_factory.mktemp("gan_cache")
    trained = {}

    def spy(*args, **kwargs):
        final, early, summary = train_dcgan(*args, **kwargs)
        trained.update(final=final, early=early)
        return final, early, summary

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gan_build, "train_dcgan", spy)
        folder = build_dcgan("smoke", root, progress=False)
    return root, folder, trained


@pytest.fixture(scope="module")
def parts():
    """Notebook 03's smoke data split into GAN / judge / reference parts."""
    real = data.load_digits(n=SMOKE.n_images, size=SMOKE.image_size, seed=SMOKE.seed)
    return real, *data.split(real, (0.6, 0.2, 0.2), seed=SMOKE.seed)


def test_second_build_is_cached_without_training(built, capsys, monkeypatch):
    root, folder, _ = built
    before = {name: (folder / name).read_bytes() for name in gan_build.WEIGHTS.values()}
    monkeypatch.setattr(gan_build, "train_dcgan", lambda *a, **k: pytest.fail("trained again instead of the cache"))
    start = time.perf_counter()
    again = build_dcgan("smoke", root, progress=False)
    assert again == folder
    assert "DCGAN: cached" in capsys.readouterr().out
    assert time.perf_counter() - start < 5  # loading the digits only; training took ~4 s alone
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_load_gives_the_trained_generators(built):
    root, folder, trained = built
    for which in ("final", "early"):
        loaded = load_dcgan(folder, which, device="cpu")
        assert not loaded.training
        torch.testing.assert_close(sample_dcgan(loaded, 16, seed=3), sample_dcgan(trained[which], 16, seed=3))
    by_name = load_dcgan("smoke", "final", device="cpu", cache_dir=root)  # the recipe name finds the cache
    torch.testing.assert_close(sample_dcgan(by_name, 8), sample_dcgan(trained["final"], 8))


def test_a_changed_recipe_or_data_source_is_a_different_folder(built):
    _, folder, _ = built
    assert folder.name in (f"dcgan-{SMOKE.key('font-digits')}", f"dcgan-{SMOKE.key('mnist')}")
    keys = {SMOKE.key("font-digits"), SMOKE.key("mnist"), replace(SMOKE, steps=201).key("font-digits"),
            replace(SMOKE, width=8).key("font-digits"), DCGAN_RECIPES["quick"].key("font-digits")}
    assert len(keys) == 5


def test_final_generator_beats_early_and_untrained_on_fd_digits(built, parts, tmp_path):
    _, folder, _ = built
    real, _, judge_part, ref_part = parts
    judge = ImageJudge.train(judge_part, steps=100, batch_size=64, seed=0, name=f"03-digits-{real.source}",
                             cache_dir=tmp_path)  # notebook 03's smoke judge
    reference = ref_part.images[:N_FD]

    def fd(generator: torch.nn.Module) -> float:
        return judge.evaluate(sample_dcgan(generator, N_FD, seed=1), reference)["fd"]

    torch.manual_seed(SMOKE.seed)
    fd_untrained = fd(build_gan(SMOKE.gan_config())[0])
    fd_early, fd_final = fd(load_dcgan(folder, "early")), fd(load_dcgan(folder, "final"))
    # measured on font digits (N=128): untrained 61.3, early 44.8, final 7.4 (0.12x untrained), real vs real 1.2
    assert fd_final < 0.3 * fd_untrained
    assert fd_final < 0.5 * fd_early and fd_early < fd_untrained  # the early generator sits in between
    # the control: the same recipe with learning off (every learning rate 0) must fail the check (measured 56.5)
    frozen, _, _ = train_dcgan(replace(SMOKE, lr_scale=0.0), real, device="cpu", progress=False)
    assert not fd(frozen) < 0.3 * fd_untrained


def test_truncation_bounds_the_latents_and_lowers_diversity(built):
    _, folder, _ = built
    z = truncated_latents(512, 100, 0.5, seed=0)
    assert z.shape == (512, 100) and z.abs().max() <= 0.5
    torch.testing.assert_close(truncated_latents(512, 100, 0.5, seed=0), z)  # reproducible
    G = load_dcgan(folder, "final")
    # psi far beyond any draw resamples nothing: the same latents as no truncation
    torch.testing.assert_close(sample_dcgan(G, 16, truncation=1e9, seed=2), sample_dcgan(G, 16, seed=2))

    def diversity(images: torch.Tensor) -> float:  # mean pairwise L2 distance of the flattened images
        return torch.pdist(images.flatten(1)).mean().item()

    plain, truncated = diversity(sample_dcgan(G, 64, seed=2)), diversity(sample_dcgan(G, 64, 0.5, seed=2))
    assert truncated < 0.8 * plain  # measured: 0.06x (0.83 vs 13.0, smoke generator)


def test_bad_inputs_say_what_to_do(built):
    _, folder, _ = built
    with pytest.raises(ValueError, match="choose one of smoke, quick, full"):
        build_dcgan("tiny")
    G = load_dcgan(folder)
    for psi in (0, -0.5):
        with pytest.raises(ValueError, match="positive number"):
            sample_dcgan(G, 4, truncation=psi)
    with pytest.raises(ValueError, match="final, early"):
        load_dcgan(folder, "middle")
    with pytest.raises(ValueError, match="not a build_dcgan folder"):
        load_dcgan(folder.parent / "nothing-here")
