"""Chapter 03's DCGAN on digits, trained once per recipe and cached, for the chapters that evaluate it (10).

:func:`build_dcgan` trains the recipe of notebook 03 (paper learning rates, an EMA of the generator) and caches
two generators under a key hashed from the recipe, the data source and the code that trains them: the final EMA
generator and an early snapshot of it (after a quarter of the steps), so a reader has two generators whose order
of quality is known. :func:`load_dcgan` loads either; :func:`sample_dcgan` draws from it, optionally with the
truncation trick (Brock et al. 2019) that trades diversity (recall) for fidelity (precision).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from aigc_lib import data, gan, storage, train
from aigc_lib.gan import DCGANGenerator, GANConfig, GANStep, build_gan, gan_optimizers, latents
from aigc_lib.runtime import pick_device, scaled_count, steps_scale

__all__ = ["DCGAN_CACHE", "DCGAN_RECIPES", "DCGANRecipe", "build_dcgan", "load_dcgan", "sample_dcgan",
           "train_dcgan", "truncated_latents"]

DCGAN_CACHE = data.DATA_DIR / "cache" / "gan"
WEIGHTS = {"final": "generator.safetensors", "early": "generator_early.safetensors"}
SUMMARY = "dcgan.json"


@dataclass(frozen=True)
class DCGANRecipe:
    """How :func:`build_dcgan` trains notebook 03's DCGAN on digits (its main run: paper lr + EMA)."""

    n_images: int = 30000  # digits before notebook 03's 6:2:2 split (GAN / judge / reference); the GAN sees 60%
    image_size: int = 32
    source: str = "auto"  # load_digits: MNIST when online or cached, else digits rendered from fonts
    width: int = 64  # ngf = ndf
    latent_dim: int = 100
    batch_size: int = 128
    steps: int = 20000
    lr_g: float = 2e-4  # Radford et al. (2016), Adam betas (0.5, 0.999)
    lr_d: float = 2e-4
    lr_scale: float = 1.0  # smoke: 5x both learning rates, so that a few hundred steps show learning
    ema_decay: float = 0.999
    early_fraction: float = 0.25  # the early generator: the EMA generator after this share of the steps
    seed: int = 0

    def gan_config(self, channels: int = 1) -> GANConfig:
        """The architecture of the generator/discriminator pair (notebook 03)."""
        return GANConfig(image_size=self.image_size, channels=channels, width=self.width,
                         latent_dim=self.latent_dim)

    def key(self, data_source: str) -> str:
        """Cache key: the recipe, the data it resolved to (MNIST or font digits) and the code that trains it."""
        what = {**asdict(self), "data_source": data_source, "steps_scale": steps_scale()}  # rehearsals apart
        return storage.cache_key(what, *_BUILD_CODE)


DCGAN_RECIPES = {  # notebook 03's profiles; measured build times in the docstring of build_dcgan
    "smoke": DCGANRecipe(n_images=3000, width=16, batch_size=32, steps=200, lr_scale=5.0),
    "quick": DCGANRecipe(n_images=10000, width=32, batch_size=64, steps=2000),
    "full": DCGANRecipe(),
}


def _recipe(recipe: DCGANRecipe | str) -> DCGANRecipe:
    return storage.named_recipe(recipe, DCGAN_RECIPES, DCGANRecipe, "DCGAN", "DCGAN_RECIPES")


class _Snapshot(train.Hook):
    """Keeps a CPU copy of the EMA generator's weights after step ``at`` (runs after the EMA hook)."""

    name = "early_snapshot"

    def __init__(self, ema: train.EMA, at: int) -> None:
        self.ema, self.at, self.weights = ema, at, None

    def on_step_end(self, trainer: train.Trainer) -> None:
        if trainer.step == self.at:
            self.weights = {k: v.detach().cpu().clone() for k, v in self.ema.model.state_dict().items()}


def train_dcgan(recipe: DCGANRecipe | str = "quick", real: data.ImageData | None = None, *,
                device: str | None = None,
                progress: bool = True) -> tuple[nn.Module, nn.Module, dict]:
    """(final EMA generator, early EMA generator, summary): notebook 03's main run, not cached."""
    recipe = _recipe(recipe)
    start = time.perf_counter()
    if real is None:
        real = data.load_digits(n=recipe.n_images, size=recipe.image_size, source=recipe.source, seed=recipe.seed)
    gan_part = data.split(real, (0.6, 0.2, 0.2), seed=recipe.seed)[0]  # notebook 03: GAN / judge / reference
    cfg = recipe.gan_config(channels=real.images.shape[1])
    torch.manual_seed(recipe.seed)
    G, D = build_gan(cfg)
    device = pick_device(device)
    loader = data.TensorLoader(gan_part.images, batch_size=recipe.batch_size, seed=recipe.seed, device=device)
    config = train.TrainConfig(max_steps=recipe.steps, precision="auto", device=str(device), progress=progress,
                               log_every=max(1, min(100, recipe.steps // 20)), scale_steps=True)
    optimizers = gan_optimizers(G, D, recipe.lr_g * recipe.lr_scale, recipe.lr_d * recipe.lr_scale)
    ema = train.EMA("G", decay=recipe.ema_decay)
    early_step = max(1, round(scaled_count(recipe.steps) * recipe.early_fraction))
    snapshot = _Snapshot(ema, early_step)
    # GANStep: D maximises log D(x) + log(1 - D(G(z))), then G maximises log D(G(z)) (non-saturating)
    trainer = train.Trainer({"G": G, "D": D}, optimizers, GANStep(cfg.latent_dim), loader, config,
                            hooks=[ema, snapshot])
    print(f"[aigc.gan] training the DCGAN ({gan.count_parameters(G) / 1e6:.2f}M generator parameters, "
          f"{len(gan_part)} {real.source} images, {trainer.max_steps} steps) on {trainer.device}")
    history = trainer.fit()
    final = ema.model.cpu().eval()
    early = DCGANGenerator(cfg)
    early.load_state_dict(snapshot.weights)
    summary = {"recipe": asdict(recipe), "gan_config": asdict(cfg), "data_source": real.source,
               "train_images": len(gan_part), "steps": trainer.step, "early_step": early_step, "history": history,
               "seconds": time.perf_counter() - start, "device": str(trainer.device),
               "generator_parameters": gan.count_parameters(G)}
    return final, early.eval(), summary


def build_dcgan(recipe: DCGANRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
                device: str | None = None, rebuild: bool = False, progress: bool = True) -> Path:
    """Train (once, then cached) notebook 03's DCGAN on digits; return the folder of its two generators.

    The folder holds ``generator.safetensors`` (the final EMA generator), ``generator_early.safetensors`` (the
    same after a quarter of the steps) and ``dcgan.json`` (recipe, architecture, data source, loss history).
    Measured on a busy 2-core CPU with one thread: smoke ~5 s, quick ~3 min.
    """
    recipe = _recipe(recipe)
    real = data.load_digits(n=recipe.n_images, size=recipe.image_size, source=recipe.source, seed=recipe.seed)
    folder = Path(cache_dir or DCGAN_CACHE) / f"dcgan-{recipe.key(real.source)}"
    if (folder / SUMMARY).is_file() and not rebuild:
        print(f"[aigc.gan] DCGAN: cached {folder}")
        return folder
    final, early, summary = train_dcgan(recipe, real, device=device, progress=progress)
    with storage.atomic_dir(folder) as tmp:  # a reader sees no folder or a complete one
        save_file(final.state_dict(), tmp / WEIGHTS["final"])
        save_file(early.state_dict(), tmp / WEIGHTS["early"])
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=1))
    print(f"[aigc.gan] DCGAN: trained now in {summary['seconds']:.0f} s on {summary['device']}, saved to {folder}")
    return folder


def load_dcgan(folder_or_recipe: str | os.PathLike | DCGANRecipe = "quick", which: str = "final",
               device: str | None = None, cache_dir: str | os.PathLike | None = None) -> nn.Module:
    """The final or early generator (eval mode) of a :func:`build_dcgan` folder, or of a recipe (built if needed)."""
    if which not in WEIGHTS:
        raise ValueError(f"which must be one of {', '.join(WEIGHTS)} (the generator after all or a quarter of the "
                         f"steps), got {which!r}.")
    if isinstance(folder_or_recipe, DCGANRecipe) or folder_or_recipe in DCGAN_RECIPES:
        folder = build_dcgan(folder_or_recipe, cache_dir, device=device)
    else:
        folder = Path(folder_or_recipe)
        if not (folder / SUMMARY).is_file():
            raise ValueError(f"{folder} is not a build_dcgan folder (no {SUMMARY}): give one, or a recipe name "
                             f"({', '.join(DCGAN_RECIPES)}).")
    cfg = GANConfig(**json.loads((folder / SUMMARY).read_text())["gan_config"])
    generator = DCGANGenerator(cfg)
    generator.load_state_dict(load_file(folder / WEIGHTS[which]))  # safetensors: plain tensors, never pickle
    return generator.to(pick_device(device)).eval()


def truncated_latents(n: int, latent_dim: int, truncation: float, seed: int | None = 0) -> Tensor:
    """z ~ N(0, I) truncated to |z_i| <= truncation by resampling the entries outside (Brock et al. 2019, sec. 3.1)."""
    if not truncation > 0:
        raise ValueError(f"truncation must be a positive number (e.g. 0.5; smaller: less diverse, more typical "
                         f"samples) or None for no truncation, got {truncation!r}.")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(n, latent_dim, generator=g)  # (N, nz)
    outside = z.abs() > truncation
    while outside.any():  # each pass redraws only the entries still outside [-psi, psi]
        z[outside] = torch.randn(int(outside.sum()), generator=g)
        outside = z.abs() > truncation
    return z


def sample_dcgan(generator: nn.Module, n: int, truncation: float | None = None, seed: int | None = 0) -> Tensor:
    """``n`` images (N, C, H, W) in [-1, 1] on the CPU; ``truncation=psi`` draws z with |z_i| <= psi (notebook 10)."""
    latent_dim = getattr(generator, "latent_dim", None)
    if latent_dim is None:
        raise ValueError("sample_dcgan needs a generator with a latent_dim attribute (load_dcgan's generators).")
    if truncation is None:
        z = latents(n, latent_dim, seed)
    else:
        z = truncated_latents(n, latent_dim, truncation, seed)
    return gan.sample(generator, z=z)


# the code whose changes change the cached generators: the GAN module, this recipe and loop, data and trainer
_BUILD_CODE = (gan, DCGANRecipe, _Snapshot, train_dcgan, data.load_digits, data.split_indices, data.TensorLoader,
               train.Trainer, train.EMA)
