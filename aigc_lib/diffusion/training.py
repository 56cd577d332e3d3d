"""Training a diffusion model (chapter 07): the epsilon- (or v-) prediction loss as a trainer step, the UNets it trains.

:func:`wrong_objective_loss` is a timestep-blind regression (the runnable form of a seed article's wrong objective),
kept to show in the notebook why it fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.diffusion.samplers import predict_noise
from aigc_lib.diffusion.schedules import NoiseSchedule

__all__ = ["PREDICTION_TYPES", "DiffusionStep", "count_parameters", "ddpm_cifar10_unet", "digits_unet",
           "wrong_objective_loss"]

PREDICTION_TYPES = ("epsilon", "v_prediction")  # diffusers' names for what a UNet predicts


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
    """Parameters of a module, or only the trainable ones (notebooks 07 and 09 compare them)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------------------------- training
@dataclass
class DiffusionStep:
    """Step function for the shared trainer: the epsilon-prediction loss of Ho et al. (2020) (chapter 07).

    For a batch x_0: draw t ~ U{0..T-1} (or biased towards the noisiest steps) and eps ~ N(0, I), make x_t in
    closed form, and regress the UNet's output onto eps: ``L = || eps - eps_theta(x_t, t) ||^2``. Batches are
    ``x0`` or ``(x0, ...)``.
    ``prediction_type="v_prediction"`` regresses onto v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 instead
    (Salimans & Ho 2022; diffusers' name), the target that stays defined at zero terminal SNR (chapter 08).
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
    snr_gamma: float | None = None  # min-SNR weighting (Hang et al. 2023): weight min(SNR_t, gamma) / SNR_t
    prediction_type: str = "epsilon"  # what the UNet predicts: "epsilon" or "v_prediction" (diffusers' names)
    # draw the noisiest ``noisy_portion`` of the timesteps ``noisy_bias`` times as often as the rest (diffusers' SDXL
    # training script: timestep_bias_strategy="later" with its multiplier and portion); 1.0: uniform
    noisy_bias: float = 1.0
    noisy_portion: float = 0.25

    def __post_init__(self) -> None:
        if self.text_encoder is not None and self.empty_ids is None and self.caption_dropout > 0:
            raise ValueError("caption_dropout needs empty_ids: the token ids of the empty prompt '' (1, L).")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}.")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise ValueError(f"snr_gamma must be positive (5 is the paper's choice) or None, got {self.snr_gamma}.")
        if self.noisy_bias <= 0 or not 0 < self.noisy_portion < 1:
            raise ValueError(f"noisy_bias must be positive and noisy_portion in (0, 1), got {self.noisy_bias} and "
                             f"{self.noisy_portion}.")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, "
                             f"got {self.prediction_type!r}.")

    def timestep_weights(self, num_steps: int) -> Tensor:
        """Relative probabilities of t = 0..T-1: 1, and ``noisy_bias`` for the noisiest ``noisy_portion``."""
        weights = torch.ones(num_steps)
        weights[num_steps - round(num_steps * self.noisy_portion):] = self.noisy_bias
        return weights

    def sample_timesteps(self, n: int, num_steps: int, device: Any) -> Tensor:
        if self.noisy_bias == 1.0:
            return torch.randint(0, num_steps, (n,), device=device)
        return torch.multinomial(self.timestep_weights(num_steps), n, replacement=True).to(device)

    def drop_captions(self, ids: Tensor) -> Tensor:
        """Caption dropout (notebook 08): each caption (a row of ``ids``, (N, L)) becomes the empty prompt with
        probability ``caption_dropout``; one draw of ``torch.rand`` per caption, from the global generator."""
        if self.caption_dropout == 0:
            return ids
        drop = torch.rand(len(ids), device=ids.device) < self.caption_dropout  # (N,) True: replace the caption
        return torch.where(drop[:, None], self.empty_ids.to(ids.device).expand_as(ids), ids)  # (N, L)

    def loss(self, trainer: Any, batch: Any) -> Tensor:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        unet = trainer.models[self.unet]
        schedule = self.schedule.to(x0.device)
        t = self.sample_timesteps(len(x0), schedule.num_steps, x0.device)
        noise = torch.randn_like(x0)
        xt = schedule.q_sample(x0, t, noise)
        cond = None
        if self.text_encoder is not None:
            ids = self.drop_captions(batch[1])  # (N, L), some captions replaced by the empty prompt
            cond = trainer.models[self.text_encoder](ids)[0]  # (N, L, D) last hidden state
        target = noise if self.prediction_type == "epsilon" else schedule.v_target(x0, t, noise)
        error = (predict_noise(unet, xt, t, cond).float() - target.float()).pow(2).mean(dim=tuple(range(1, x0.ndim)))
        if self.snr_gamma is not None:  # low-noise steps (large SNR) stop dominating the gradient
            # as an x_0 error, the epsilon loss weighs SNR and the v loss SNR + 1; both become min(SNR, gamma)
            snr = schedule.snr(t).float()
            error = error * snr.clamp(max=self.snr_gamma) / (snr if self.prediction_type == "epsilon" else snr + 1)
        return error.mean()

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        loss = self.loss(trainer, batch)
        trainer.backward(loss)
        trainer.optimizer_step(self.optimizer)
        return {"loss": loss.detach()}


def wrong_objective_loss(model: nn.Module, x0: Tensor, schedule: NoiseSchedule) -> Tensor:
    """A timestep-blind regression, kept to show why it fails: predict the clean image from the *noisy* one with
    no timestep given, so nothing tells the network how much noise there is (chapter 07)."""
    t = torch.randint(0, schedule.num_steps, (len(x0),), device=x0.device)
    xt = schedule.q_sample(x0, t, torch.randn_like(x0))
    return F.mse_loss(predict_noise(model, xt, torch.zeros_like(t)), x0)
