"""Diffusion models: noise schedules, the noise-prediction loss, DDPM/DDIM samplers, guidance, the mini Stable Diffusion.

Chapter 07 derives DDPM and trains a ``UNet2DModel`` on digits; chapter 08 trains every part of a small Stable
Diffusion (VAE, tokenizer, text encoder, cross-attention UNet) on the captioned shapes and puts them into a real
diffusers ``StableDiffusionPipeline``; chapter 09 teaches it a new shape with LoRA.

Conventions: images live in ``[-1, 1]``; ``t`` is an integer timestep in ``[0, T)`` (0 = almost clean), the
notation of Ho et al. (2020) with ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``. Our samplers are written plainly and
are tested against diffusers' ``DDPMScheduler`` and ``DDIMScheduler`` (``tests/test_diffusion.py``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.data import COLORS, DATA_DIR, POSITIONS, SHAPES, shape_caption

SCHEDULES = ("linear", "scaled_linear", "cosine")
SD_CACHE = DATA_DIR / "cache" / "sd"
SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
_MINI_SD_VERSION = 2  # bump when training code changes what a cached mini SD holds


# ----------------------------------------------------------------------------------------------- schedules
def make_betas(num_steps: int = 1000, kind: str = "linear", beta_start: float = 1e-4,
               beta_end: float = 0.02) -> Tensor:
    """beta_1..beta_T as float32, computed exactly as diffusers does for the same names.

    ``linear``: Ho et al. (2020), 1e-4 to 0.02. ``scaled_linear``: Stable Diffusion's, linear in sqrt(beta)
    (use beta_start=0.00085, beta_end=0.012). ``cosine``: Nichol & Dhariwal (2021), alpha_bar(t) = cos^2 of
    (t/T + s)/(1 + s) * pi/2 with s = 0.008, betas capped at 0.999 (diffusers' ``squaredcos_cap_v2``).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}.")
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float32) ** 2
    if kind == "cosine":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999)
                 for i in range(num_steps)]
        return torch.tensor(betas, dtype=torch.float32)
    raise ValueError(f"unknown noise schedule {kind!r}: choose one of {', '.join(SCHEDULES)}.")


_DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}


class NoiseSchedule(nn.Module):
    """The forward process q(x_t | x_0) as buffers, so ``.to(device)`` moves it with the model (chapter 07)."""

    def __init__(self, num_steps: int = 1000, kind: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02) -> None:
        super().__init__()
        self.num_steps, self.kind, self.beta_start, self.beta_end = num_steps, kind, beta_start, beta_end
        betas = make_betas(num_steps, kind, beta_start, beta_end)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alphas_cumprod", alphas_cumprod)  # alpha_bar_t
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt())
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt())

    @classmethod
    def stable_diffusion(cls, num_steps: int = 1000) -> NoiseSchedule:
        """Stable Diffusion's training schedule: scaled_linear from 0.00085 to 0.012."""
        return cls(num_steps, "scaled_linear", 0.00085, 0.012)

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, kind={self.kind!r}"

    def _at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """values[t] shaped (N, 1, 1, ...) to broadcast against ``like``."""
        t = torch.as_tensor(t, device=values.device).long()
        out = values[t].to(like.dtype)
        return out.reshape(*out.shape, *([1] * (like.ndim - out.ndim)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, in one step (closed form)."""
        return self._at(self.sqrt_alphas_cumprod, t, x0) * x0 + self._at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def predict_x0(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """The clean image implied by a noise prediction: (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        return (xt - self._at(self.sqrt_one_minus_alphas_cumprod, t, xt) * eps) / self._at(
            self.sqrt_alphas_cumprod, t, xt)

    def snr(self, t: Tensor | None = None) -> Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (all steps when t is None)."""
        ab = self.alphas_cumprod if t is None else self.alphas_cumprod[torch.as_tensor(t).long()]
        return ab / (1 - ab)

    def diffusers_config(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.num_steps, "beta_schedule": _DIFFUSERS_NAMES[self.kind],
                "beta_start": self.beta_start, "beta_end": self.beta_end}

    def to_diffusers(self, scheduler: str = "ddpm", **overrides: Any) -> Any:
        """The diffusers scheduler with the same betas: 'ddpm', 'ddim', 'dpm++' (DPM-Solver++ 2M) or 'euler'."""
        from diffusers import (
            DDIMScheduler,
            DDPMScheduler,
            DPMSolverMultistepScheduler,
            EulerDiscreteScheduler,
        )

        classes = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler,
                   "euler": EulerDiscreteScheduler}
        if scheduler not in classes:
            raise ValueError(f"unknown scheduler {scheduler!r}: choose one of {', '.join(classes)}.")
        return classes[scheduler](**{**self.diffusers_config(), **overrides})


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, schedule: NoiseSchedule) -> Tensor:
    """Function form of :meth:`NoiseSchedule.q_sample`."""
    return schedule.q_sample(x0, t, noise)


def q_sample_iterated(x0: Tensor, t: int, schedule: NoiseSchedule, generator: torch.Generator | None = None) -> Tensor:
    """x_t by t+1 single noising steps x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps_s (to check the closed form)."""
    x = x0
    for s in range(t + 1):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = schedule.alphas[s].sqrt() * x + schedule.betas[s].sqrt() * noise
    return x


# ----------------------------------------------------------------------------------------------- models
def predict_noise(model: nn.Module, x: Tensor, t: Tensor | int, cond: Tensor | None = None) -> Tensor:
    """eps_theta(x_t, t[, c]) for a diffusers UNet (``.sample``) or any module returning a tensor."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(len(x))
    out = model(x, t) if cond is None else model(x, t, encoder_hidden_states=cond)
    return out.sample if hasattr(out, "sample") else out


def guided_noise(model: nn.Module, x: Tensor, t: Tensor | int, cond: Tensor, uncond: Tensor,
                 guidance_scale: float) -> Tensor:
    """Classifier-free guidance: eps_u + w (eps_c - eps_u), both predictions in one batched call (chapter 08)."""
    if guidance_scale == 1.0:
        return predict_noise(model, x, t, cond)
    uncond = uncond.expand(len(x), *uncond.shape[1:]) if len(uncond) == 1 else uncond
    eps = predict_noise(model, torch.cat([x, x]), t, torch.cat([uncond, cond]))
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def digits_unet(image_size: int = 32, channels: int = 1, width: int = 32, attention: bool = True) -> nn.Module:
    """A small ``UNet2DModel`` for 28/32 px digits: three resolutions, self-attention at the lowest (chapter 07)."""
    from diffusers import UNet2DModel

    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two 2x down-samplings), got {image_size}.")
    down = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D" if attention else "DownBlock2D")
    up = ("AttnUpBlock2D" if attention else "UpBlock2D", "UpBlock2D", "UpBlock2D")
    return UNet2DModel(sample_size=image_size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(width, 2 * width, 2 * width), down_block_types=down, up_block_types=up,
                       norm_num_groups=min(8, width), attention_head_dim=8)


def ddpm_cifar10_unet() -> nn.Module:
    """The DDPM CIFAR-10 UNet of Ho et al. (2020), 35.7M parameters (google/ddpm-cifar10-32's configuration)."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(128, 256, 256, 256),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       dropout=0.1, attention_head_dim=None, norm_eps=1e-6, resnet_time_scale_shift="default")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------------------------- training
@dataclass
class DiffusionStep:
    """Step function for the shared trainer: the epsilon-prediction loss of Ho et al. (2020) (chapter 07).

    For a batch x_0: draw t ~ U{0..T-1} and eps ~ N(0, I), make x_t in closed form, and regress the UNet's
    output onto eps: ``L = || eps - eps_theta(x_t, t) ||^2``. Batches are ``x0`` or ``(x0, ...)``.
    With ``text_encoder`` set (chapter 08) batches are ``(latents, input_ids)``; a share ``caption_dropout`` of
    the captions is replaced by ``empty_ids`` (the empty prompt) so one network also learns the unconditional
    prediction that classifier-free guidance needs.
    """

    schedule: NoiseSchedule
    unet: str = "model"  # the trainer's name of the UNet
    text_encoder: str | None = None  # the trainer's name of the text encoder (trained together with the UNet)
    empty_ids: Tensor | None = None  # (1, L) token ids of the empty prompt
    caption_dropout: float = 0.1
    optimizer: str | None = None  # None: the trainer's only optimizer

    def __post_init__(self) -> None:
        if self.text_encoder is not None and self.empty_ids is None and self.caption_dropout > 0:
            raise ValueError("caption_dropout needs empty_ids: the token ids of the empty prompt '' (1, L).")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}.")

    def loss(self, trainer: Any, batch: Any) -> Tensor:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        unet = trainer.models[self.unet]
        schedule = self.schedule.to(x0.device)
        t = torch.randint(0, schedule.num_steps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        xt = schedule.q_sample(x0, t, noise)
        cond = None
        if self.text_encoder is not None:
            ids = batch[1]
            if self.caption_dropout > 0:
                drop = torch.rand(len(ids), device=ids.device) < self.caption_dropout
                ids = torch.where(drop[:, None], self.empty_ids.to(ids.device).expand_as(ids), ids)
            cond = trainer.models[self.text_encoder](ids)[0]  # (N, L, D) last hidden state
        return F.mse_loss(predict_noise(unet, xt, t, cond).float(), noise.float())

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        loss = self.loss(trainer, batch)
        trainer.backward(loss)
        trainer.optimizer_step(self.optimizer)
        return {"loss": loss.detach()}


def wrong_objective_loss(model: nn.Module, x0: Tensor, schedule: NoiseSchedule) -> Tensor:
    """The seed article's objective, kept to show why it fails: regress the *noisy image* onto the clean one
    with no timestep given, so nothing tells the network how much noise there is (chapter 07)."""
    t = torch.randint(0, schedule.num_steps, (len(x0),), device=x0.device)
    xt = schedule.q_sample(x0, t, torch.randn_like(x0))
    return F.mse_loss(predict_noise(model, xt, torch.zeros_like(t)), x0)


# ----------------------------------------------------------------------------------------------- samplers
def _noise(shape: Sequence[int], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Standard normal noise drawn on the generator's device (as diffusers' randn_tensor does)."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def _progress(steps: Sequence[int], progress: bool, desc: str) -> Any:
    if not progress:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc, leave=False)


def _denoiser(model: nn.Module, cond: Tensor | None, uncond: Tensor | None,
              guidance_scale: float) -> Callable[[Tensor, int], Tensor]:
    if cond is not None and uncond is not None:
        return lambda x, t: guided_noise(model, x, t, cond, uncond, guidance_scale)
    return lambda x, t: predict_noise(model, x, t, cond)


@torch.no_grad()
def ddpm_sample(model: nn.Module, schedule: NoiseSchedule, shape: Sequence[int], *,
                generator: torch.Generator | None = None, x_T: Tensor | None = None, clip_x0: bool = True,
                cond: Tensor | None = None, uncond: Tensor | None = None, guidance_scale: float = 1.0,
                progress: bool = True, trajectory_every: int = 0) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Ancestral sampling with all T steps (Ho et al., 2020, algorithm 2), written out (chapter 07).

    x_{t-1} = mu(x_t, x0_hat) + sigma_t z, with x0_hat from the predicted noise (clipped to [-1, 1]),
    mu the mean of q(x_{t-1} | x_t, x_0) and sigma_t^2 = beta_tilde_t (the "fixed small" variance).
    Matches ``DDPMScheduler`` (clip_sample=True, variance_type="fixed_small") with the same generator.
    """
    device = schedule.betas.device
    x = _noise(shape, generator, device, torch.float32) if x_T is None else x_T.to(device, torch.float32)
    eps_fn = _denoiser(model, cond, uncond, guidance_scale)
    ab = schedule.alphas_cumprod
    trajectory = [x.cpu()] if trajectory_every else []
    for t in _progress(range(schedule.num_steps - 1, -1, -1), progress, "DDPM"):
        eps = eps_fn(x, t).float()
        ab_prev = ab[t - 1] if t > 0 else torch.ones((), device=device)
        x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        # posterior q(x_{t-1} | x_t, x_0): mean coefficients and variance (Ho et al., eq. 6-7). alpha_t and beta_t
        # are recovered from alpha_bar as diffusers does (equal in exact arithmetic, so float32 results match too)
        alpha_t = ab[t] / ab_prev
        beta_t = 1 - alpha_t
        mean = (ab_prev.sqrt() * beta_t / (1 - ab[t])) * x0 + (alpha_t.sqrt() * (1 - ab_prev) / (1 - ab[t])) * x
        if t > 0:
            variance = ((1 - ab_prev) / (1 - ab[t]) * beta_t).clamp(min=1e-20)
            x = mean + variance.sqrt() * _noise(x.shape, generator, device, x.dtype)
        else:
            x = mean
        if trajectory_every and (t % trajectory_every == 0):
            trajectory.append(x.cpu())
    return (x, trajectory) if trajectory_every else x


def ddim_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """Evenly spaced timesteps, largest first ("leading" spacing as in diffusers): 980, 960, ..., 0 for 50 of 1000."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be in [1, {num_train_steps}], got {num_steps}.")
    ratio = num_train_steps // num_steps
    return [i * ratio for i in range(num_steps - 1, -1, -1)]


@torch.no_grad()
def ddim_sample(model: nn.Module, schedule: NoiseSchedule, shape: Sequence[int], num_steps: int = 50, *,
                eta: float = 0.0, generator: torch.Generator | None = None, x_T: Tensor | None = None,
                clip_x0: bool = True, cond: Tensor | None = None, uncond: Tensor | None = None,
                guidance_scale: float = 1.0, progress: bool = True) -> Tensor:
    """DDIM (Song et al., 2021): jump from t to t - T/num_steps; eta = 0 is deterministic (chapter 07).

    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z,
    sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev). Matches ``DDIMScheduler`` (defaults).
    """
    device = schedule.betas.device
    x = _noise(shape, generator, device, torch.float32) if x_T is None else x_T.to(device, torch.float32)
    eps_fn = _denoiser(model, cond, uncond, guidance_scale)
    ab = schedule.alphas_cumprod
    ratio = schedule.num_steps // num_steps
    for t in _progress(ddim_timesteps(schedule.num_steps, num_steps), progress, "DDIM"):
        eps = eps_fn(x, t).float()
        ab_prev = ab[t - ratio] if t - ratio >= 0 else torch.ones((), device=device)
        x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        sigma = eta * ((1 - ab_prev) / (1 - ab[t]) * (1 - ab[t] / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps
        if eta > 0:
            x = x + sigma * _noise(x.shape, generator, device, x.dtype)
    return x


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped (for plots and image files)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


# ----------------------------------------------------------------------------------------------- prompts
def caption_targets(captions: Sequence[str]) -> dict[str, Tensor]:
    """Parse 'a red circle at the top left' back into colour/shape/position indices for prompt accuracy."""
    colors, phrases = list(COLORS), {phrase: i for i, phrase in enumerate(POSITIONS.values())}
    out: dict[str, list[int]] = {"color": [], "shape": [], "position": []}
    for caption in captions:
        words = caption.strip().split()
        if len(words) < 4 or words[1] not in colors or words[2] not in SHAPES or " ".join(words[3:]) not in phrases:
            raise ValueError(f"{caption!r} is not a shapes caption like {shape_caption('red', 'circle', 'top left')!r}.")
        out["color"].append(colors.index(words[1]))
        out["shape"].append(SHAPES.index(words[2]))
        out["position"].append(phrases[" ".join(words[3:])])
    return {k: torch.tensor(v) for k, v in out.items()}


def all_captions(shapes: Sequence[str] = SHAPES) -> list[str]:
    """Every caption the shapes grammar can write for these shapes: colours x shapes x positions."""
    return [shape_caption(c, s, p) for s in shapes for c in COLORS for p in POSITIONS]


def prompt_set(n: int, shapes: Sequence[str] = SHAPES, seed: int = 0) -> list[str]:
    """n prompts drawn evenly (round robin over a seeded shuffle) from all_captions(shapes)."""
    captions = all_captions(shapes)
    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(seed)).tolist()
    return [captions[order[i % len(order)]] for i in range(n)]


# steps of the judge per profile: chapters 08 and 09 pass the same number so they share one cached judge
# (200 steps already read real shapes 100% right at 32 px; measured on a 2-core CPU, 7.8 s)
JUDGE_STEPS = {"smoke": 200, "quick": 600, "full": 600}


def shapes_judge(image_size: int = 32, n: int = 12000, steps: int = 600, seed: int = 0,
                 device: Any = None, progress: bool = False) -> Any:
    """The prompt-accuracy judge: an ImageJudge with colour, shape and position heads trained on real shapes of
    all six kinds (held-out ones included), cached after the first run (chapters 08 and 09)."""
    from aigc_lib.data import make_shapes
    from aigc_lib.metrics import ImageJudge

    data = make_shapes(n, size=image_size, seed=seed + 1000)  # not the images the generators train on
    return ImageJudge.train(data, heads=data.attributes, steps=steps, seed=seed, device=device,
                            name=f"shapes-{image_size}px", progress=progress)


# ----------------------------------------------------------------------------------------------- tokenizer
def train_caption_tokenizer(texts: Sequence[str], max_length: int = 16, vocab_size: int = 400) -> Any:
    """A CLIP-format BPE tokenizer (``CLIPTokenizer``) trained on captions, offline (chapter 08).

    Same format as Stable Diffusion's: lower case, words end in ``</w>``, ``<|startoftext|>``/``<|endoftext|>``
    around every prompt and ``<|endoftext|>`` as padding up to ``max_length``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("train_caption_tokenizer got no text: pass the captions of the training images.")
    specials = ["<|startoftext|>", "<|endoftext|>"]
    bpe = Tokenizer(models.BPE(unk_token=None, end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = sorted(set("".join(texts).lower()) | set("abcdefghijklmnopqrstuvwxyz"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, end_of_word_suffix="</w>",
                                  initial_alphabet=alphabet, show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = CLIPTokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.model_max_length = max_length
    return tokenizer


def tokenize(tokenizer: Any, prompts: Sequence[str]) -> Tensor:
    """(N, L) ids padded to the tokenizer's model_max_length, exactly as StableDiffusionPipeline pads them."""
    too_long = [p for p in prompts if len(tokenizer(p).input_ids) > tokenizer.model_max_length]
    if too_long:
        raise ValueError(f"{len(too_long)} prompt(s) exceed {tokenizer.model_max_length} tokens, e.g. {too_long[0]!r}.")
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


# ----------------------------------------------------------------------------------------------- mini SD
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
    unet_steps: int = 3000
    unet_batch: int = 128
    unet_lr: float = 1e-3
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    seed: int = 0

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    def key(self) -> str:
        payload = json.dumps({**asdict(self), "version": _MINI_SD_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


MINI_SD_RECIPES: dict[str, MiniSDRecipe] = {
    # CI: proves every stage runs and the pipeline saves, reloads and generates (not a good model)
    "smoke": MiniSDRecipe("smoke", n_images=2000, vae_channels=(16, 32, 32), vae_steps=100, vae_batch=32,
                          text_width=32, text_layers=1, unet_channels=(32, 64), unet_steps=100, unet_batch=32,
                          unet_lr=2e-3, ema_decay=0.99),
    # a laptop CPU: 36 min of training on a quiet 2-core CPU (VAE 7, UNet 29), 100% prompt accuracy at w = 2-5;
    # 200 VAE + 1300 UNet steps of batch 32 (13 min) did not learn shape or position (colour 76%, all 2%)
    "quick": MiniSDRecipe("quick", n_images=10000, vae_steps=600, vae_batch=32, unet_channels=(64, 96),
                          unet_steps=2500, unet_batch=64, ema_decay=0.995),
    # one GPU in under 10 minutes of training
    "full": MiniSDRecipe("full", image_size=64, n_images=50000, vae_channels=(32, 64, 128), vae_steps=3000,
                         text_width=128, unet_channels=(128, 256, 256), unet_layers=2, unet_steps=6000,
                         unet_batch=256, unet_lr=5e-4, vae_batch=128),
}


def get_recipe(recipe: str | MiniSDRecipe) -> MiniSDRecipe:
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
        cross_attention_dim=recipe.text_width, attention_head_dim=8, norm_num_groups=min(32, recipe.unet_channels[0]))


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
                  schedule: NoiseSchedule | None = None, scheduler: str = "dpm++") -> Any:
    """Put the parts into a real diffusers ``StableDiffusionPipeline`` (no safety checker: our images are shapes)."""
    from diffusers import StableDiffusionPipeline

    schedule = schedule or NoiseSchedule.stable_diffusion()
    overrides: dict[str, Any] = {"steps_offset": 1}  # Stable Diffusion's scheduler settings
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


def _fit(models: Mapping[str, nn.Module], step_fn: Any, data: Any, steps: int, lr: float, *, device: Any,
         hooks: Sequence[Any] = (), progress: bool = True, params: Sequence[nn.Parameter] | None = None,
         log_every: int = 25, warmup: int = 100) -> Any:
    from aigc_lib.train import TrainConfig, Trainer

    params = list(params) if params is not None else [p for m in models.values() for p in m.parameters()]
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    config = TrainConfig(max_steps=steps, device=None if device is None else str(device), log_every=log_every,
                         max_grad_norm=1.0, progress=progress)
    trainer = Trainer(dict(models), {"model": optimizer}, step_fn, data, config,
                      schedulers={"model": schedule}, hooks=list(hooks))
    trainer.fit()
    return trainer


def train_vae(vae: nn.Module, images: Tensor, recipe: MiniSDRecipe, *, device: Any = None,
              progress: bool = True) -> Any:
    """Train the VAE to reconstruct images; returns the trainer (``.history``)."""
    from aigc_lib.data import TensorLoader

    loader = TensorLoader(images, batch_size=recipe.vae_batch, seed=recipe.seed)
    return _fit({"model": vae}, VAEStep(recipe.kl_weight), loader, recipe.vae_steps, recipe.vae_lr,
                device=device, progress=progress)


def train_text_to_image(unet: nn.Module, text_encoder: nn.Module, latents: Tensor, input_ids: Tensor,
                        recipe: MiniSDRecipe, *, empty_ids: Tensor, steps: int | None = None,
                        lr: float | None = None, device: Any = None, progress: bool = True, ema: bool = True,
                        params: Sequence[nn.Parameter] | None = None, caption_dropout: float | None = None,
                        warmup: int = 100) -> Any:
    """Train the UNet (and the text encoder, when given) with the noise-prediction loss on (latent, caption)
    pairs and caption dropout. EMA copies of the trained models are kept and copied back at the end.
    Freeze a part (``requires_grad_(False)``) to train the rest alone (chapter 09 trains only LoRA weights).
    The learning rate rises linearly over the first ``warmup`` steps."""
    from aigc_lib.data import TensorLoader
    from aigc_lib.train import EMA

    models = {"unet": unet, "text_encoder": text_encoder}  # a frozen one (requires_grad False) is only run
    step = DiffusionStep(NoiseSchedule.stable_diffusion(), unet="unet", text_encoder="text_encoder",
                         empty_ids=empty_ids,
                         caption_dropout=recipe.caption_dropout if caption_dropout is None else caption_dropout)
    trained = [name for name, m in models.items() if any(p.requires_grad for p in m.parameters())]
    hooks = [EMA(name, decay=recipe.ema_decay) for name in trained] if ema else []
    loader = TensorLoader(latents, input_ids, batch_size=recipe.unet_batch, seed=recipe.seed)
    trainer = _fit(models, step, loader, steps or recipe.unet_steps, lr or recipe.unet_lr, device=device,
                   hooks=hooks, progress=progress, params=params, warmup=warmup)
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
    from aigc_lib.data import make_shapes

    return make_shapes(recipe.n_images, size=recipe.image_size, seed=recipe.seed + 1).images


def train_mini_sd(recipe: str | MiniSDRecipe = "quick", *, device: Any = None, progress: bool = True) -> MiniSD:
    """Train every part of the mini Stable Diffusion on the shapes (VAE, then tokenizer, text encoder and UNet)."""
    from aigc_lib.data import make_shapes
    from aigc_lib.runtime import pick_device

    recipe = get_recipe(recipe)
    device = pick_device(device)
    torch.manual_seed(recipe.seed)
    data = make_shapes(recipe.n_images, size=recipe.image_size, shapes=recipe.shapes, seed=recipe.seed)
    history: dict[str, Any] = {}
    start = time.perf_counter()
    vae, images = make_vae(recipe), vae_images(recipe)
    history["vae"] = train_vae(vae, images, recipe, device=device, progress=progress).history["train"]
    vae = vae.to(device).eval().requires_grad_(False)
    history["latent_scale"] = set_latent_scale(vae, images.to(device))
    history["vae_seconds"] = time.perf_counter() - start
    tokenizer = train_caption_tokenizer(all_captions())
    text_encoder, unet = make_text_encoder(tokenizer, recipe), make_cond_unet(recipe)
    latents = encode_latents(vae, data.images)
    start = time.perf_counter()
    trainer = train_text_to_image(unet, text_encoder, latents, tokenize(tokenizer, data.captions), recipe,
                                  empty_ids=tokenize(tokenizer, [""]), device=device, progress=progress)
    history["unet"] = trainer.history["train"]
    history["unet_seconds"] = time.perf_counter() - start
    pipe = make_pipeline(vae, text_encoder.eval(), tokenizer, unet.eval()).to(device)
    return MiniSD(pipe, recipe, history)


def save_mini_sd(mini: MiniSD, folder: str | os.PathLike) -> Path:
    """``pipe.save_pretrained`` into ``folder`` atomically, with the recipe and training history beside it."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    mini.pipe.save_pretrained(tmp)
    meta = {"recipe": asdict(mini.recipe), "key": mini.recipe.key(), "history": mini.history}
    (tmp / "mini_sd.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    mini.path = folder
    return folder


def mini_sd_dir(recipe: str | MiniSDRecipe, cache_dir: str | os.PathLike = SD_CACHE) -> Path:
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
    folder.parent.mkdir(parents=True, exist_ok=True)
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

    from aigc_lib.hub import ModelNotAvailableError, find_source, load_pretrained
    from aigc_lib.runtime import pick_device

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


# ----------------------------------------------------------------------------------------------- LoRA
def add_unet_lora(unet: nn.Module, rank: int = 8, alpha: float | None = None,
                  targets: str | Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0"),
                  adapter_name: str = "default") -> int:
    r"""Freeze the UNet and add LoRA adapters (peft) to its attention projections; returns the trainable count.

    ``targets``: module-name suffixes, or one regular expression matched against full names (peft's rule), e.g.
    ``r".*attn2\.(to_k|to_v)"`` for cross-attention keys and values only."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                target_modules=targets if isinstance(targets, str) else list(targets)),
                     adapter_name=adapter_name)
    return count_parameters(unet, trainable_only=True)


def save_unet_lora(unet: nn.Module, folder: str | os.PathLike) -> Path:
    """Write only the adapter weights (``pytorch_lora_weights.safetensors``), loadable by ``pipe.load_lora_weights``."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return Path(folder) / "pytorch_lora_weights.safetensors"
