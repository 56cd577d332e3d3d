"""LoRA on the UNet (chapter 09): add peft adapters to its attention projections, save only the adapter."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from aigc_lib.diffusion.training import count_parameters

__all__ = ["add_unet_lora", "save_unet_lora"]


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
