"""The cached DDPM of chapter 07 (aigc_lib.diffusion.ddpm_build): built once, cached, loaded, better than untrained."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch

from aigc_lib import data
from aigc_lib.diffusion import ddpm_build
from aigc_lib.diffusion.ddpm_build import (
    DDPM_RECIPES,
    build_ddpm,
    denoising_loss,
    load_ddpm,
    sample_ddpm,
    train_ddpm,
)

SMOKE = DDPM_RECIPES["smoke"]




@pytest.fixture(scope="module")
def built(one_thread, tmp_path_factory):
    """(cache root, folder, the EMA UNet as trained): the smoke recipe built once (~5 s)."""
    root = tmp_path_factory.mktemp("ddpm_cache")
    trained = {}

    def spy(*args, **kwargs):
        unet, summary = train_ddpm(*args, **kwargs)
        trained["unet"] = unet
        return unet, summary

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ddpm_build, "train_ddpm", spy)
        folder = build_ddpm("smoke", root, progress=False)
    return root, folder, trained["unet"]


@pytest.fixture(scope="module")
def real():
    return data.load_digits(n=SMOKE.n_images, size=SMOKE.image_size, seed=SMOKE.seed)


def test_second_build_is_cached_without_training(built, capsys, monkeypatch):
    root, folder, _ = built
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    before = weights.read_bytes()
    monkeypatch.setattr(ddpm_build, "train_ddpm", lambda *a, **k: pytest.fail("trained again instead of the cache"))
    start = time.perf_counter()
    assert build_ddpm("smoke", root, progress=False) == folder
    assert "DDPM: cached" in capsys.readouterr().out
    assert time.perf_counter() - start < 5  # loading the digits only; training took ~5 s alone
    assert weights.read_bytes() == before


def test_load_gives_the_trained_unet_and_its_schedule(built):
    root, folder, trained = built
    unet, schedule = load_ddpm(folder, device="cpu")
    assert not unet.training
    torch.testing.assert_close(schedule.alphas_cumprod, SMOKE.noise_schedule().alphas_cumprod)
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t).sample, trained(x, t).sample)
    by_name, _ = load_ddpm("smoke", device="cpu", cache_dir=root)  # the recipe name finds the cache
    torch.testing.assert_close(sample_ddpm(by_name, schedule, 2, steps=4), sample_ddpm(trained, schedule, 2, steps=4))


def test_a_changed_recipe_or_data_source_is_a_different_folder(built):
    _, folder, _ = built
    assert folder.name in (f"ddpm-{SMOKE.key('font-digits')}", f"ddpm-{SMOKE.key('mnist')}")
    keys = {SMOKE.key("font-digits"), SMOKE.key("mnist"), replace(SMOKE, steps=61).key("font-digits"),
            replace(SMOKE, schedule="cosine").key("font-digits"), DDPM_RECIPES["quick"].key("font-digits")}
    assert len(keys) == 5


def test_trained_unet_beats_untrained_on_heldout_denoising_loss(built, real):
    _, folder, _ = built
    ref_part = data.split(real, (0.6, 0.2, 0.2), seed=SMOKE.seed)[2]  # never trained on
    heldout = ref_part.images[:SMOKE.heldout_images]
    unet, schedule = load_ddpm(folder, device="cpu")
    summary = json.loads((folder / "ddpm.json").read_text())
    loss = denoising_loss(unet, schedule, heldout, seed=SMOKE.seed)
    assert loss == pytest.approx(summary["heldout_loss"], rel=1e-4)
    # measured (font digits, 64 held-out images): trained 0.104, untrained 1.206 (0.09x); predicting 0 scores 1.0
    assert loss < 0.3 * summary["heldout_loss_untrained"]
    # the control: the same recipe with learning off (lr 0) must fail the check (measured 1.206, the untrained loss)
    _, frozen = train_ddpm(replace(SMOKE, lr=0.0), real, device="cpu", progress=False)
    assert not frozen["heldout_loss"] < 0.3 * frozen["heldout_loss_untrained"]


def test_sample_ddpm_gives_judge_range_images_and_checks_its_inputs(built):
    _, folder, _ = built
    unet, schedule = load_ddpm(folder, device="cpu")
    images = sample_ddpm(unet, schedule, 3, steps=5, seed=1)
    assert images.shape == (3, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
    torch.testing.assert_close(sample_ddpm(unet, schedule, 3, steps=5, seed=1), images)  # seeded
    with pytest.raises(ValueError, match="'ddim'"):
        sample_ddpm(unet, schedule, 2, sampler="euler")
    with pytest.raises(ValueError, match="leave steps=None"):
        sample_ddpm(unet, schedule, 2, steps=10, sampler="ddpm")
    with pytest.raises(ValueError, match="choose one of smoke, quick, full"):
        build_ddpm("tiny")
    with pytest.raises(ValueError, match="not a build_ddpm folder"):
        load_ddpm(folder.parent / "nothing-here")
