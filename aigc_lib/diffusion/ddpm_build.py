"""Chapter 07's DDPM on digits, trained once per recipe and cached, for the chapters that evaluate it (10).

:func:`build_ddpm` trains notebook 07's ``UNet2DModel`` with the epsilon-prediction loss (AdamW, linear warm-up,
an EMA of the weights) and caches the EMA UNet as a diffusers ``save_pretrained`` folder under a key hashed from
the recipe, the data source and the code that trains it. :func:`load_ddpm` gives back (UNet, schedule);
:func:`sample_ddpm` draws images with the DDIM or DDPM sampler of :mod:`aigc_lib.diffusion.samplers`.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib import data, storage, train
from aigc_lib.diffusion import samplers, schedules
from aigc_lib.diffusion import training as diffusion_training
from aigc_lib.diffusion.samplers import ddim_sample, ddpm_sample, predict_noise
from aigc_lib.diffusion.schedules import NoiseSchedule
from aigc_lib.diffusion.training import DiffusionStep, count_parameters, digits_unet
from aigc_lib.runtime import pick_device, steps_scale

__all__ = ["DDPM_CACHE", "DDPM_RECIPES", "DDPMRecipe", "build_ddpm", "denoising_loss", "load_ddpm", "sample_ddpm",
           "train_ddpm"]

DDPM_CACHE = data.DATA_DIR / "cache" / "ddpm"
SUMMARY = "ddpm.json"


@dataclass(frozen=True)
class DDPMRecipe:
    """How :func:`build_ddpm` trains notebook 07's digits DDPM (its UNet, schedule and optimiser)."""

    n_images: int = 30000  # digits before notebook 07's 6:2:2 split (model / judge / reference); it trains on 60%
    image_size: int = 32
    source: str = "auto"  # load_digits: MNIST when online or cached, else digits rendered from fonts
    width: int = 64  # channels of the UNet's first level (digits_unet)
    schedule: str = "linear"  # Ho et al.'s beta_t from 1e-4 to 0.02, or "cosine"
    num_train_steps: int = 1000  # T
    batch_size: int = 128
    steps: int = 15000
    lr: float = 5e-4
    warmup_steps: int = 500
    ema_decay: float = 0.9995
    heldout_images: int = 256  # reference digits (never trained on) for the held-out denoising loss
    seed: int = 0

    def noise_schedule(self) -> NoiseSchedule:
        """The schedule the UNet trains and samples with (notebook 07)."""
        return NoiseSchedule(self.num_train_steps, self.schedule)

    def key(self, data_source: str) -> str:
        """Cache key: the recipe, the data it resolved to (MNIST or font digits) and the code that trains it."""
        what = {**asdict(self), "data_source": data_source, "steps_scale": steps_scale()}  # rehearsals apart
        return storage.cache_key(what, *_BUILD_CODE)


DDPM_RECIPES = {  # notebook 07's quick and full profiles; smoke is narrower and shorter than 07's (a few seconds)
    "smoke": DDPMRecipe(n_images=3000, width=8, batch_size=16, steps=60, lr=3e-3, warmup_steps=10,
                        ema_decay=0.98, heldout_images=64),
    "quick": DDPMRecipe(n_images=10000, width=16, batch_size=32, steps=1500, lr=2e-3, warmup_steps=100,
                        ema_decay=0.995, heldout_images=64),
    "full": DDPMRecipe(),
}


def _recipe(recipe: DDPMRecipe | str) -> DDPMRecipe:
    return storage.named_recipe(recipe, DDPM_RECIPES, DDPMRecipe, "DDPM", "DDPM_RECIPES")


@torch.no_grad()
def denoising_loss(unet: nn.Module, schedule: NoiseSchedule, images: Tensor, seed: int = 0,
                   repeats: int = 4) -> float:
    """L_simple = E_{t, eps} || eps - eps_theta(x_t, t) ||^2 on ``images``, with t and eps drawn from ``seed``
    (the same draws for every model, so two models compare on identical inputs) (notebook 07)."""
    device = next(unet.parameters()).device
    schedule = schedule.to(device)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(repeats):
        t = torch.randint(0, schedule.num_steps, (len(images),), generator=g)  # (N,) t ~ U{0..T-1}
        eps = torch.randn(images.shape, generator=g)  # (N, C, H, W)
        x_t = schedule.q_sample(images.to(device), t.to(device), eps.to(device))  # closed form
        total += F.mse_loss(predict_noise(unet, x_t, t.to(device)).float(), eps.to(device)).item()
    return total / repeats


def train_ddpm(recipe: DDPMRecipe | str = "quick", real: data.ImageData | None = None, *,
               device: str | None = None, progress: bool = True) -> tuple[nn.Module, dict]:
    """(EMA UNet, summary): notebook 07's training run, not cached."""
    recipe = _recipe(recipe)
    start = time.perf_counter()
    if real is None:
        real = data.load_digits(n=recipe.n_images, size=recipe.image_size, source=recipe.source, seed=recipe.seed)
    train_part, _, ref_part = data.split(real, (0.6, 0.2, 0.2), seed=recipe.seed)  # notebook 07's split
    torch.manual_seed(recipe.seed)
    unet = digits_unet(image_size=recipe.image_size, channels=real.images.shape[1], width=recipe.width)
    untrained = copy.deepcopy(unet).eval()  # the same initial weights: the held-out baseline
    device = pick_device(device)
    loader = data.TensorLoader(train_part.images, batch_size=recipe.batch_size, seed=recipe.seed, device=device)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / recipe.warmup_steps))
    ema = train.EMA("model", decay=recipe.ema_decay)
    config = train.TrainConfig(max_steps=recipe.steps, precision="auto", max_grad_norm=1.0, device=str(device),
                               progress=progress, log_every=max(1, min(100, recipe.steps // 40)), scale_steps=True)
    schedule = recipe.noise_schedule()
    # DiffusionStep: t ~ U{0..T-1}, eps ~ N(0, I), x_t in closed form, loss = || eps - eps_theta(x_t, t) ||^2
    trainer = train.Trainer(unet, optimizer, DiffusionStep(schedule.to(device)), loader, config,
                            schedulers={"model": warmup}, hooks=[ema])
    print(f"[aigc.diffusion] training the digits DDPM ({count_parameters(unet) / 1e6:.2f}M parameters, "
          f"{len(train_part)} {real.source} images, {trainer.max_steps} steps) on {trainer.device}")
    history = trainer.fit()
    model = ema.model.cpu().eval()
    heldout = ref_part.images[:recipe.heldout_images]
    summary = {"recipe": asdict(recipe), "data_source": real.source, "train_images": len(train_part),
               "steps": trainer.step, "history": history, "seconds": time.perf_counter() - start,
               "device": str(trainer.device), "parameters": count_parameters(unet),
               "heldout_loss": denoising_loss(model, schedule, heldout, recipe.seed),
               "heldout_loss_untrained": denoising_loss(untrained, schedule, heldout, recipe.seed)}
    return model, summary


def build_ddpm(recipe: DDPMRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
               device: str | None = None, rebuild: bool = False, progress: bool = True) -> Path:
    """Train (once, then cached) notebook 07's digits DDPM; return its folder.

    The folder holds ``unet/`` (the EMA UNet, ``UNet2DModel.from_pretrained`` loads it) and ``ddpm.json``
    (recipe, data source, loss history, held-out denoising loss of the trained and the untrained UNet).
    Measured on a busy 2-core CPU with one thread: smoke ~5 s, quick ~3.5 min.
    """
    recipe = _recipe(recipe)
    real = data.load_digits(n=recipe.n_images, size=recipe.image_size, source=recipe.source, seed=recipe.seed)
    folder = Path(cache_dir or DDPM_CACHE) / f"ddpm-{recipe.key(real.source)}"
    if (folder / SUMMARY).is_file() and not rebuild:
        print(f"[aigc.diffusion] DDPM: cached {folder}")
        return folder
    unet, summary = train_ddpm(recipe, real, device=device, progress=progress)
    with storage.atomic_dir(folder) as tmp:  # a reader sees no folder or a complete one
        unet.save_pretrained(tmp / "unet")  # config.json + diffusion_pytorch_model.safetensors
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=1))
    print(f"[aigc.diffusion] DDPM: trained now in {summary['seconds']:.0f} s on {summary['device']}, held-out loss "
          f"{summary['heldout_loss']:.3f} (untrained {summary['heldout_loss_untrained']:.3f}), saved to {folder}")
    return folder


def load_ddpm(folder_or_recipe: str | os.PathLike | DDPMRecipe = "quick", device: str | None = None,
              cache_dir: str | os.PathLike | None = None) -> tuple[nn.Module, NoiseSchedule]:
    """(EMA UNet in eval mode, its noise schedule) of a :func:`build_ddpm` folder, or of a recipe (built if needed)."""
    from diffusers import UNet2DModel

    if isinstance(folder_or_recipe, DDPMRecipe) or folder_or_recipe in DDPM_RECIPES:
        folder = build_ddpm(folder_or_recipe, cache_dir, device=device)
    else:
        folder = Path(folder_or_recipe)
        if not (folder / SUMMARY).is_file():
            raise ValueError(f"{folder} is not a build_ddpm folder (no {SUMMARY}): give one, or a recipe name "
                             f"({', '.join(DDPM_RECIPES)}).")
    recipe = DDPMRecipe(**json.loads((folder / SUMMARY).read_text())["recipe"])
    device = pick_device(device)
    unet = UNet2DModel.from_pretrained(folder / "unet").to(device).eval()
    return unet, recipe.noise_schedule().to(device)


def sample_ddpm(unet: nn.Module, schedule: NoiseSchedule, n: int, steps: int | None = None, sampler: str = "ddim",
                seed: int = 0) -> Tensor:
    """``n`` images (N, C, H, W) in [-1, 1] on the CPU, by DDIM (``steps``, default 50) or DDPM (all T) (notebook 07)."""
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' (few steps) or 'ddpm' (all {schedule.num_steps}), got {sampler!r}.")
    if sampler == "ddpm" and steps not in (None, schedule.num_steps):
        raise ValueError(f"DDPM takes all {schedule.num_steps} steps: leave steps=None, or use sampler='ddim' for "
                         f"{steps} steps.")
    config = unet.config
    shape = (n, config.in_channels, config.sample_size, config.sample_size)
    schedule = schedule.to(next(unet.parameters()).device)
    generator = torch.Generator().manual_seed(seed)  # noise drawn on the CPU: the same images on every device
    with torch.no_grad():
        if sampler == "ddim":
            images = ddim_sample(unet, schedule, shape, steps or 50, generator=generator, progress=False)
        else:
            images = ddpm_sample(unet, schedule, shape, generator=generator, progress=False)
    return images.float().clamp(-1, 1).cpu()


# the code whose changes change the cached UNet: schedules, samplers (predict_noise), the loss and UNet, this
# recipe and loop, the data and the trainer
_BUILD_CODE = (schedules, samplers, diffusion_training, DDPMRecipe, train_ddpm, denoising_loss, data.load_digits,
               data.split_indices, data.TensorLoader, train.Trainer, train.EMA)
