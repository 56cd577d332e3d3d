"""The mini Stable Diffusion (chapter 08): every part trained here on the captioned shapes, in a real pipeline.

The VAE (``AutoencoderKL``), the text encoder (``CLIPTextModel``) and the cross-attention UNet
(``UNet2DConditionModel``) are the classes of Stable Diffusion, a few channels wide; :func:`make_pipeline` puts
them into diffusers' ``StableDiffusionPipeline``. :func:`build_mini_sd` trains them once per recipe and caches
the saved pipeline under a key hashed from the recipe and the code that trains it; :func:`load_sd_pipeline`
loads real Stable Diffusion when it can be had and this model when it cannot, and says which path ran.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib import data, shapes, storage, train
from aigc_lib.diffusion import samplers, schedules
from aigc_lib.diffusion import tokenizer as caption_tokenizer
from aigc_lib.diffusion import training as diffusion_training
from aigc_lib.diffusion.schedules import NoiseSchedule
from aigc_lib.diffusion.tokenizer import tokenize, train_caption_tokenizer
from aigc_lib.diffusion.training import DiffusionStep
from aigc_lib.hub import ModelNotAvailableError, find_source, load_pretrained
from aigc_lib.runtime import pick_device, steps_scale
from aigc_lib.shapes import SHAPES, all_captions

__all__ = ["MINI_SD_RECIPES", "SD15_HUB_ID", "SD_CACHE", "MiniSD", "MiniSDRecipe", "VAEStep", "build_mini_sd",
           "decode_latents", "encode_latents", "generate", "get_recipe", "load_sd_pipeline", "make_cond_unet",
           "make_pipeline", "make_text_encoder", "make_vae", "mini_sd_dir", "save_mini_sd", "set_latent_scale",
           "train_mini_sd", "train_text_to_image", "train_vae", "vae_images"]

SD_CACHE = data.DATA_DIR / "cache" / "sd"
SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class MiniSDRecipe:
    """Sizes and training lengths of the mini Stable Diffusion the course trains offline (chapter 08)."""

    name: str
    image_size: int = 32
    n_images: int = 20000
    shapes: tuple[str, ...] = tuple(s for s in SHAPES if s != "star")  # "star" is held out for chapter 09
    vae_channels: tuple[int, ...] = (32, 64, 64)  # 3 levels: 4x smaller latents (SD: 4 levels, 8x)
    latent_channels: int = 4
    vae_steps: int = 1500
    vae_batch: int = 64
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    text_width: int = 64
    text_layers: int = 2
    unet_channels: tuple[int, ...] = (64, 128)
    unet_layers: int = 1
    # attention heads per UNet attention layer (diffusers' legacy name for it: attention_head_dim). SD 1.5 has 8 heads
    # of 40-160 dimensions; 8 heads at 32 channels would be 4 dimensions each
    unet_heads: int = 8
    unet_steps: int = 3000
    unet_batch: int = 128
    unet_lr: float = 1e-3
    caption_dropout: float = 0.1
    # the noise process (Lin et al. 2024): the last step is pure noise, so the model must take the layout (above all
    # *where* the shape goes) from the prompt; v-prediction, because epsilon is undefined at zero SNR
    zero_terminal_snr: bool = True
    prediction_type: str = "v_prediction"
    # the noisiest tenth of the timesteps, where the layout is decided, is drawn 3x as often (DiffusionStep)
    noisy_bias: float = 3.0
    noisy_portion: float = 0.1
    snr_gamma: float | None = None  # min-SNR loss weighting; None: the plain loss
    ema_decay: float = 0.999
    seed: int = 0

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    def noise_schedule(self) -> NoiseSchedule:
        """Stable Diffusion's betas, rescaled to zero terminal SNR when the recipe says so."""
        return NoiseSchedule.stable_diffusion(zero_terminal_snr=self.zero_terminal_snr)

    def key(self) -> str:
        """Cache key: the recipe and the code that trains and saves the model (notebook 08)."""
        return storage.cache_key({**asdict(self), "steps_scale": steps_scale()}, *_BUILD_CODE)  # rehearsals


MINI_SD_RECIPES: dict[str, MiniSDRecipe] = {
    # CI: proves every stage runs and the pipeline saves, reloads and generates (not a good model)
    "smoke": MiniSDRecipe("smoke", n_images=2000, vae_channels=(16, 32, 32), vae_steps=100, vae_batch=32,
                          text_width=32, text_layers=1, unet_channels=(32, 64), unet_steps=100, unet_batch=32,
                          unet_lr=2e-3, ema_decay=0.99),
    # a laptop CPU: a small VAE (1000 steps) and a (32, 64) UNet (1800 steps); profiled on a quiet 2-core CPU (120-180
    # GFLOP/s fp32 matmul): VAE 0.11 s/step (reconstructions judged 100% right from about 1000 steps), UNet 0.22 s/step.
    # Probes (135 prompts, guidance 3, 12 DPM-Solver++ steps, EMA): with SD's own schedule (epsilon, min-SNR 5)
    # position stayed near chance and then jumped at a run-dependent step (12% at 1200, 52% at 1800; 14% after 2400
    # in another run): x_T still shows where the shape is. Zero terminal SNR + v-prediction: position 100% from step
    # 600 in one run (all three 95.6% at 1500) but 39% at 1500 in another; drawing the noisiest 10% of timesteps 3x
    # as often made position 100% by step 900 in that run too. Colour and shape then need 1500-1800 steps (84-98% at
    # 1500 across runs), hence 1800. Then whole-notebook runs of that recipe drew all three right for 88.9% and
    # 44.1% (position 56%: the stall again) at the best guidance, so a quarter of the timesteps (the noisiest) is
    # drawn 3x as often (probes, 270 prompts, w = 1.5, 10 DPM-Solver++ steps: 92.2% and 97.8% for two
    # initialisations, position 100% in both). Speed: fused AdamW 10% faster; two attention heads instead of 8 (16-32
    # dimensions each instead of 4-8) 195 -> 162 ms per trainer step, with 92.2% against 95.6% in one probe each.
    "quick": MiniSDRecipe("quick", n_images=10000, vae_channels=(16, 32, 32), vae_steps=1000, vae_batch=32,
                          vae_lr=3e-3, unet_channels=(32, 64), unet_heads=2, unet_steps=1800, unet_batch=64,
                          unet_lr=3e-3, noisy_portion=0.25, ema_decay=0.995),
    # one GPU in under 10 minutes of training
    "full": MiniSDRecipe("full", image_size=64, n_images=50000, vae_channels=(32, 64, 128), vae_steps=3000,
                         text_width=128, unet_channels=(128, 256, 256), unet_layers=2, unet_steps=6000,
                         unet_batch=256, unet_lr=5e-4, vae_batch=128),
}


def get_recipe(recipe: str | MiniSDRecipe) -> MiniSDRecipe:
    """A recipe by name (smoke, quick, full), or the MiniSDRecipe given (notebook 08)."""
    if isinstance(recipe, MiniSDRecipe):
        return recipe
    if recipe not in MINI_SD_RECIPES:
        raise ValueError(f"unknown mini SD recipe {recipe!r}: choose one of {', '.join(MINI_SD_RECIPES)} "
                         "or pass a MiniSDRecipe.")
    return MINI_SD_RECIPES[recipe]


def make_vae(recipe: MiniSDRecipe) -> nn.Module:
    """A small ``AutoencoderKL``: the same class (and code path) as Stable Diffusion's VAE."""
    from diffusers import AutoencoderKL

    levels = len(recipe.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=recipe.vae_channels,
                         layers_per_block=1, latent_channels=recipe.latent_channels,
                         norm_num_groups=min(16, recipe.vae_channels[0]), sample_size=recipe.image_size)


def make_text_encoder(tokenizer: Any, recipe: MiniSDRecipe) -> nn.Module:
    """A small ``CLIPTextModel`` (a transformer over the prompt's tokens) for this tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=recipe.text_width,
                            intermediate_size=4 * recipe.text_width, num_hidden_layers=recipe.text_layers,
                            num_attention_heads=max(1, recipe.text_width // 32),
                            max_position_embeddings=tokenizer.model_max_length,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, projection_dim=recipe.text_width)
    return CLIPTextModel(config)


def make_cond_unet(recipe: MiniSDRecipe) -> nn.Module:
    """A small ``UNet2DConditionModel``: ResNet blocks plus cross-attention to the text at every resolution."""
    from diffusers import UNet2DConditionModel

    levels = len(recipe.unet_channels)
    return UNet2DConditionModel(
        sample_size=recipe.latent_size, in_channels=recipe.latent_channels, out_channels=recipe.latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * levels, up_block_types=("CrossAttnUpBlock2D",) * levels,
        block_out_channels=recipe.unet_channels, layers_per_block=recipe.unet_layers,
        cross_attention_dim=recipe.text_width, attention_head_dim=recipe.unet_heads,
        norm_num_groups=min(32, recipe.unet_channels[0]))


@dataclass
class VAEStep:
    """Step function: reconstruction (MSE) + kl_weight * KL(q(z|x) || N(0, I)) for an ``AutoencoderKL``."""

    kl_weight: float = 1e-6
    model: str = "model"

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        vae = trainer.models[self.model]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        mse = F.mse_loss(recon.float(), x.float())
        kl = posterior.kl().mean() / x[0].numel()  # per pixel, like the MSE
        loss = mse + self.kl_weight * kl
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach(), "mse": mse.detach(), "kl": kl.detach()}


@torch.no_grad()
def encode_latents(vae: nn.Module, images: Tensor, batch_size: int = 256, scale: float | None = None) -> Tensor:
    """Latent means of images in [-1, 1], times ``scale`` (default: the VAE's ``scaling_factor``)."""
    scale = vae.config.scaling_factor if scale is None else scale
    device = next(vae.parameters()).device
    out = [vae.encode(images[i:i + batch_size].to(device)).latent_dist.mean.float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) * scale


@torch.no_grad()
def decode_latents(vae: nn.Module, latents: Tensor, batch_size: int = 256) -> Tensor:
    """Images in [-1, 1] from scaled latents (divides by the VAE's ``scaling_factor`` first)."""
    device = next(vae.parameters()).device
    out = [vae.decode(latents[i:i + batch_size].to(device) / vae.config.scaling_factor).sample.float().cpu()
           for i in range(0, len(latents), batch_size)]
    return torch.cat(out).clamp(-1, 1)


def set_latent_scale(vae: nn.Module, images: Tensor) -> float:
    """Set ``vae.config.scaling_factor`` to 1/std of the latents so the diffusion model sees unit variance
    (Stable Diffusion's 0.18215 was found the same way)."""
    std = encode_latents(vae, images[:2048], scale=1.0).std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return 1.0 / std


def make_pipeline(vae: nn.Module, text_encoder: nn.Module, tokenizer: Any, unet: nn.Module,
                  recipe: str | MiniSDRecipe = "quick", scheduler: str = "dpm++") -> Any:
    """Put the parts into a real diffusers ``StableDiffusionPipeline`` (no safety checker: our images are shapes).

    The scheduler gets the recipe's noise process and prediction type (its config is saved with the pipeline, so
    ``from_pretrained`` samples the way the UNet was trained)."""
    from diffusers import StableDiffusionPipeline

    recipe = get_recipe(recipe)
    schedule = recipe.noise_schedule()
    overrides: dict[str, Any] = {"steps_offset": 1, "prediction_type": recipe.prediction_type}
    if scheduler in ("ddpm", "ddim"):
        overrides |= {"clip_sample": False} | ({"set_alpha_to_one": False} if scheduler == "ddim" else {})
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=schedule.to_diffusers(scheduler, **overrides), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


@torch.no_grad()
def generate(pipe: Any, prompts: Sequence[str], *, steps: int = 25, guidance_scale: float = 4.0,
             negative_prompt: str | Sequence[str] | None = None, seed: int = 0, batch_size: int = 64,
             size: int | None = None, progress: bool = False) -> Tensor:
    """Images (N, 3, H, W) in [-1, 1] from ``pipe(...)``, in batches, reproducible from ``seed``."""
    size = size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
    batches = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generate", leave=False)
    out = []
    for i in batches:
        chunk = list(prompts[i:i + batch_size])
        negative = negative_prompt if negative_prompt is None or isinstance(negative_prompt, str) \
            else list(negative_prompt[i:i + batch_size])
        generator = torch.Generator(device="cpu").manual_seed(seed + i)
        images = pipe(chunk, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance_scale,
                      negative_prompt=negative, generator=generator, output_type="pt").images
        out.append(images.float().cpu() * 2 - 1)
    return torch.cat(out)


def _fit(models: Mapping[str, nn.Module], step_fn: Any, loader: Any, steps: int, lr: float, *, device: Any,
         hooks: Sequence[Any] = (), progress: bool = True, params: Sequence[nn.Parameter] | None = None,
         log_every: int = 25, warmup: int = 100, scale_steps: bool = True) -> Any:
    params = list(params) if params is not None else [p for m in models.values() for p in m.parameters()]
    params = [p for p in params if p.requires_grad]
    # fused: one kernel for all parameters (CPU and CUDA since torch 2.4); 10% faster UNet steps on a 2-core CPU
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    config = train.TrainConfig(max_steps=steps, device=None if device is None else str(device), log_every=log_every,
                         max_grad_norm=1.0, progress=progress, scale_steps=scale_steps)
    trainer = train.Trainer(dict(models), {"model": optimizer}, step_fn, loader, config,
                      schedulers={"model": schedule}, hooks=list(hooks))
    trainer.fit()
    return trainer


def train_vae(vae: nn.Module, images: Tensor, recipe: MiniSDRecipe, *, device: Any = None,
              progress: bool = True) -> Any:
    """Train the VAE to reconstruct images; returns the trainer (``.history``)."""
    loader = data.TensorLoader(images, batch_size=recipe.vae_batch, seed=recipe.seed)
    return _fit({"model": vae}, VAEStep(recipe.kl_weight), loader, recipe.vae_steps, recipe.vae_lr,
                device=device, progress=progress)


def train_text_to_image(unet: nn.Module, text_encoder: nn.Module, latents: Tensor, input_ids: Tensor,
                        recipe: MiniSDRecipe, *, empty_ids: Tensor, steps: int | None = None,
                        lr: float | None = None, device: Any = None, progress: bool = True, ema: bool = True,
                        params: Sequence[nn.Parameter] | None = None, caption_dropout: float | None = None,
                        warmup: int = 100, scheduler_config: Mapping[str, Any] | None = None) -> Any:
    """Train the UNet (and the text encoder, when given) with the denoising loss on (latent, caption) pairs and
    caption dropout. EMA copies of the trained models are kept and copied back at the end.
    Freeze a part (``requires_grad_(False)``) to train the rest alone (chapter 09 trains only LoRA weights).
    The learning rate rises linearly over the first ``warmup`` steps. The noise process and the prediction type
    are the recipe's, or those of ``scheduler_config`` (a pipeline's ``scheduler.config``) when fine-tuning a
    pipeline trained elsewhere: a UNet must keep the objective it was trained with."""
    models = {"unet": unet, "text_encoder": text_encoder}  # a frozen one (requires_grad False) is only run
    if scheduler_config is None:
        schedule, prediction_type = recipe.noise_schedule(), recipe.prediction_type
    else:
        schedule = NoiseSchedule.from_diffusers(scheduler_config)
        prediction_type = scheduler_config.get("prediction_type", "epsilon")
    step = DiffusionStep(schedule, unet="unet", text_encoder="text_encoder", empty_ids=empty_ids,
                         caption_dropout=recipe.caption_dropout if caption_dropout is None else caption_dropout,
                         snr_gamma=recipe.snr_gamma, prediction_type=prediction_type,
                         noisy_bias=recipe.noisy_bias, noisy_portion=recipe.noisy_portion)
    trained = [name for name, m in models.items() if any(p.requires_grad for p in m.parameters())]
    # one EMA per trained model, each under its own name (hook states are keyed by name in checkpoints)
    hooks = [train.EMA(m, decay=recipe.ema_decay, name=f"EMA_{m}") for m in trained] if ema else []
    loader = data.TensorLoader(latents, input_ids, batch_size=recipe.unet_batch, seed=recipe.seed)
    # a recipe's step count shrinks in rehearsals; a count given by the caller was already scaled there
    trainer = _fit(models, step, loader, recipe.unet_steps if steps is None else steps,
                   recipe.unet_lr if lr is None else lr, device=device,
                   hooks=hooks, progress=progress, params=params, warmup=warmup, scale_steps=steps is None)
    for hook in hooks:  # sample with the averaged weights
        models[hook.model_name].load_state_dict(hook.model.state_dict())
    return trainer


@dataclass
class MiniSD:
    """What :func:`train_mini_sd` returns: the pipeline, its recipe and what training measured."""

    pipe: Any
    recipe: MiniSDRecipe
    history: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def vae_images(recipe: MiniSDRecipe) -> Tensor:
    """The VAE's training images: shapes of *all six* kinds. The VAE is a general image codec (SD's saw billions of
    images of everything); only the text-to-image model has stars held out, so chapter 09's LoRA on the UNet
    teaches a concept the decoder can already draw."""
    return data.make_shapes(recipe.n_images, size=recipe.image_size, seed=recipe.seed + 1).images


def train_mini_sd(recipe: str | MiniSDRecipe = "quick", *, device: Any = None, progress: bool = True) -> MiniSD:
    """Train every part of the mini Stable Diffusion on the shapes (VAE, then tokenizer, text encoder and UNet)."""
    recipe = get_recipe(recipe)
    device = pick_device(device)
    torch.manual_seed(recipe.seed)
    captioned = data.make_shapes(recipe.n_images, size=recipe.image_size, shapes=recipe.shapes, seed=recipe.seed)
    history: dict[str, Any] = {}
    start = time.perf_counter()
    vae, images = make_vae(recipe), vae_images(recipe)
    history["vae"] = train_vae(vae, images, recipe, device=device, progress=progress).history["train"]
    vae = vae.to(device).eval().requires_grad_(False)
    history["latent_scale"] = set_latent_scale(vae, images.to(device))
    history["vae_seconds"] = time.perf_counter() - start
    tokenizer = train_caption_tokenizer(all_captions())
    text_encoder, unet = make_text_encoder(tokenizer, recipe), make_cond_unet(recipe)
    latents = encode_latents(vae, captioned.images)
    start = time.perf_counter()
    trainer = train_text_to_image(unet, text_encoder, latents, tokenize(tokenizer, captioned.captions), recipe,
                                  empty_ids=tokenize(tokenizer, [""]), device=device, progress=progress)
    history["unet"] = trainer.history["train"]
    history["unet_seconds"] = time.perf_counter() - start
    pipe = make_pipeline(vae, text_encoder.eval(), tokenizer, unet.eval(), recipe).to(device)
    return MiniSD(pipe, recipe, history)


def save_mini_sd(mini: MiniSD, folder: str | os.PathLike) -> Path:
    """``pipe.save_pretrained`` into ``folder`` atomically, with the recipe and training history beside it."""
    folder = Path(folder)
    meta = {"recipe": asdict(mini.recipe), "key": mini.recipe.key(), "history": mini.history}
    with storage.atomic_dir(folder) as tmp:  # a reader sees the old folder or the complete new one
        mini.pipe.save_pretrained(tmp)
        (tmp / "mini_sd.json").write_text(json.dumps(meta, indent=1))
    mini.path = folder
    return folder


def mini_sd_dir(recipe: str | MiniSDRecipe, cache_dir: str | os.PathLike = SD_CACHE) -> Path:
    """The cache folder of a recipe: its name and its key (recipe + code) (notebook 08)."""
    recipe = get_recipe(recipe)
    return Path(cache_dir) / f"mini-sd-{recipe.name}-{recipe.key()}"


def build_mini_sd(recipe: str | MiniSDRecipe = "quick", *, cache_dir: str | os.PathLike = SD_CACHE,
                  rebuild: bool = False, device: Any = None, progress: bool = True) -> Path:
    """The offline Stable Diffusion: train it once (train_mini_sd) and cache the saved pipeline folder."""
    folder = mini_sd_dir(recipe, cache_dir)
    if not rebuild and (folder / "model_index.json").is_file() and (folder / "mini_sd.json").is_file():
        print(f"[aigc.diffusion] mini SD {get_recipe(recipe).name!r} found in {folder}")
        return folder
    start = time.perf_counter()
    mini = train_mini_sd(recipe, device=device, progress=progress)
    save_mini_sd(mini, folder)
    print(f"[aigc.diffusion] trained mini SD {mini.recipe.name!r} in {time.perf_counter() - start:.0f} s; "
          f"saved to {folder}")
    return folder


def load_sd_pipeline(hub_id: str | None = SD15_HUB_ID, local_dir: str | os.PathLike | None = None, *,
                     recipe: str | MiniSDRecipe = "quick", online: bool | None = None, device: Any = None,
                     dtype: torch.dtype | None = None) -> tuple[Any, str]:
    """Real Stable Diffusion from the hub (online), else a local folder, else the mini SD (built if needed).

    Returns ``(pipe, source)`` with source ``"hub"``, ``"cache"`` or ``"local"``; prints which path ran.
    """
    from diffusers import StableDiffusionPipeline

    device = pick_device(device)
    try:
        source = find_source(hub_id, local_dir, online) if (hub_id or local_dir) else None
    except ModelNotAvailableError:
        source = None
    if source is None:
        local_dir = build_mini_sd(recipe, device=device)
        source = find_source(None, local_dir, online=False)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    if source.kind != "local":
        kwargs |= {"safety_checker": None, "requires_safety_checker": False} if hub_id == SD15_HUB_ID else {}
    pipe = load_pretrained(StableDiffusionPipeline, hub_id if source.kind != "local" else None,
                           source.location if source.kind == "local" else local_dir, online=online, **kwargs)
    return pipe.to(device), source.kind


# the code whose changes change a trained mini SD: what trains and saves it here, the diffusion loss and
# schedule, the tokenizer, the shapes it learns from, the loader and the trainer
_BUILD_CODE = (MiniSDRecipe, make_vae, make_text_encoder, make_cond_unet, VAEStep, encode_latents, set_latent_scale,
               make_pipeline, _fit, train_vae, train_text_to_image, vae_images, train_mini_sd, save_mini_sd,
               schedules, samplers.predict_noise, diffusion_training.DiffusionStep, caption_tokenizer, shapes,
               data.make_shapes, data._EpochLoader, data.TensorLoader, train.Trainer, train.EMA)
