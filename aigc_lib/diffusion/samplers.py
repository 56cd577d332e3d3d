"""The reverse process (chapters 07, 08): noise predictions, classifier-free guidance, DDPM and DDIM sampling.

Our samplers are written plainly and are tested against diffusers' ``DDPMScheduler`` and ``DDIMScheduler`` on
identical inputs (``tests/test_diffusion.py``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from aigc_lib.diffusion.schedules import NoiseSchedule

__all__ = ["ddim_sample", "ddim_timesteps", "ddpm_sample", "guided_noise", "predict_noise", "to_unit"]


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
