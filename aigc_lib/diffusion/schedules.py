"""The forward process of diffusion (chapter 07): beta schedules and q(x_t | x_0) in closed form.

Conventions: images live in ``[-1, 1]``; ``t`` is an integer timestep in ``[0, T)`` (0 = almost clean), the
notation of Ho et al. (2020) with ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``. The betas are computed exactly as
diffusers computes them for the same names, so :meth:`NoiseSchedule.to_diffusers` gives the same process.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["SCHEDULES", "NoiseSchedule", "make_betas", "q_sample", "q_sample_iterated", "rescale_zero_terminal_snr"]

SCHEDULES = ("linear", "scaled_linear", "cosine")


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


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Betas whose last step has zero signal (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
    are Flawed", Algorithm 1): shift and scale sqrt(alpha_bar) so its last value is 0 and its first unchanged.

    Stable Diffusion's schedule ends at alpha_bar_T = 0.0047, so x_T still carries sqrt(0.0047) = 7% of the image:
    training never shows the model pure noise, while sampling starts from it (chapter 08 measures what leaks).
    The same computation as diffusers' ``rescale_betas_zero_snr=True``.
    """
    sqrt_ab = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))  # last -> 0, first kept (diffusers' order of operations)
    alpha_bar = sqrt_ab**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


_DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}


class NoiseSchedule(nn.Module):
    """The forward process q(x_t | x_0) as buffers, so ``.to(device)`` moves it with the model (chapter 07)."""

    def __init__(self, num_steps: int = 1000, kind: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02, zero_terminal_snr: bool = False) -> None:
        super().__init__()
        self.num_steps, self.kind, self.beta_start, self.beta_end = num_steps, kind, beta_start, beta_end
        self.zero_terminal_snr = zero_terminal_snr
        betas = make_betas(num_steps, kind, beta_start, beta_end)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alphas_cumprod", alphas_cumprod)  # alpha_bar_t
        self.register_buffer("sqrt_alphas_cumprod", alphas_cumprod.sqrt())
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt())

    @classmethod
    def stable_diffusion(cls, num_steps: int = 1000, zero_terminal_snr: bool = False) -> NoiseSchedule:
        """Stable Diffusion's training schedule: scaled_linear from 0.00085 to 0.012 (with ``zero_terminal_snr``,
        rescaled so the last step is pure noise, as Lin et al. 2024 recommend)."""
        return cls(num_steps, "scaled_linear", 0.00085, 0.012, zero_terminal_snr)

    @classmethod
    def from_diffusers(cls, config: Any) -> NoiseSchedule:
        """The schedule a diffusers scheduler's config describes (e.g. ``pipe.scheduler.config``)."""
        names = {v: k for k, v in _DIFFUSERS_NAMES.items()}
        if config["beta_schedule"] not in names:
            raise ValueError(f"beta_schedule {config['beta_schedule']!r} is not one of {', '.join(names)}.")
        return cls(config["num_train_timesteps"], names[config["beta_schedule"]], config["beta_start"],
                   config["beta_end"], bool(config.get("rescale_betas_zero_snr", False)))

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, kind={self.kind!r}" + (", zero_terminal_snr=True" if self.zero_terminal_snr
                                                                     else "")

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

    def v_target(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """The velocity v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 that a v-prediction model regresses
        onto (Salimans & Ho 2022); at alpha_bar = 0 it is -x_0, so the model must say what the image is."""
        signal, noise_scale = self._at(self.sqrt_alphas_cumprod, t, x0), self._at(self.sqrt_one_minus_alphas_cumprod, t, x0)
        return signal * noise - noise_scale * x0

    def snr(self, t: Tensor | None = None) -> Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (all steps when t is None)."""
        ab = self.alphas_cumprod if t is None else self.alphas_cumprod[torch.as_tensor(t).long()]
        return ab / (1 - ab)

    def diffusers_config(self) -> dict[str, Any]:
        config = {"num_train_timesteps": self.num_steps, "beta_schedule": _DIFFUSERS_NAMES[self.kind],
                  "beta_start": self.beta_start, "beta_end": self.beta_end}
        if self.zero_terminal_snr:  # with the sampler starting at the last step (trailing spacing), as Lin et al. do
            config |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
        return config

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
