"""Diffusion models for chapters 07-09: schedules, the noise-prediction loss, samplers, the mini Stable Diffusion.

One module per idea, the teaching core first:

- :mod:`~aigc_lib.diffusion.schedules`: beta schedules and the forward process q(x_t | x_0) (07);
- :mod:`~aigc_lib.diffusion.samplers`: noise predictions, classifier-free guidance, DDPM and DDIM (07, 08);
- :mod:`~aigc_lib.diffusion.training`: the epsilon-prediction step for the trainer, the UNets it trains (07);
- :mod:`~aigc_lib.diffusion.tokenizer`: the CLIP-format caption tokenizer trained offline (08);
- :mod:`~aigc_lib.diffusion.ddpm_build`: chapter 07's digits DDPM trained once per recipe, cached, loaded (10);
- :mod:`~aigc_lib.diffusion.mini_sd`: the mini Stable Diffusion trained on captioned shapes, cached, loaded (08);
- :mod:`~aigc_lib.diffusion.lora`: LoRA adapters on the UNet (09);
- :mod:`~aigc_lib.diffusion.speed`: Stable Diffusion 1.5 built from its configs and the fast inference path
  that ``bench/diffusion.py`` measures (not re-exported here: ``from aigc_lib.diffusion import speed``).

Chapter 07 derives DDPM and trains a ``UNet2DModel`` on digits; chapter 08 trains every part of a small Stable
Diffusion on the captioned shapes (:mod:`aigc_lib.shapes`) and puts them into a real diffusers
``StableDiffusionPipeline``; chapter 09 teaches it a new shape with LoRA. Every public name is re-exported here,
with the shapes grammar and the prompt-accuracy judge that chapters 08 and 09 use, so notebooks write ``D.X``.
"""
from aigc_lib.diffusion.ddpm_build import (
    DDPM_CACHE,
    DDPM_RECIPES,
    DDPMRecipe,
    build_ddpm,
    denoising_loss,
    load_ddpm,
    sample_ddpm,
    train_ddpm,
)
from aigc_lib.diffusion.lora import add_unet_lora, save_unet_lora
from aigc_lib.diffusion.mini_sd import (
    MINI_SD_RECIPES,
    SD15_HUB_ID,
    SD_CACHE,
    MiniSD,
    MiniSDRecipe,
    VAEStep,
    build_mini_sd,
    decode_latents,
    encode_latents,
    generate,
    get_recipe,
    load_sd_pipeline,
    make_cond_unet,
    make_pipeline,
    make_text_encoder,
    make_vae,
    mini_sd_dir,
    save_mini_sd,
    set_latent_scale,
    train_mini_sd,
    train_text_to_image,
    train_vae,
    vae_images,
)
from aigc_lib.diffusion.samplers import (
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    guided_noise,
    predict_noise,
    to_unit,
)
from aigc_lib.diffusion.schedules import (
    SCHEDULES,
    NoiseSchedule,
    make_betas,
    q_sample,
    q_sample_iterated,
    rescale_zero_terminal_snr,
)
from aigc_lib.diffusion.tokenizer import tokenize, train_caption_tokenizer
from aigc_lib.diffusion.training import (
    PREDICTION_TYPES,
    DiffusionStep,
    count_parameters,
    ddpm_cifar10_unet,
    digits_unet,
    wrong_objective_loss,
)
from aigc_lib.metrics.judge import JUDGE_STEPS, shapes_judge
from aigc_lib.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    all_captions,
    caption_targets,
    prompt_set,
    shape_caption,
)

__all__ = [
    "COLORS", "DDPM_CACHE", "DDPM_RECIPES", "JUDGE_STEPS", "MINI_SD_RECIPES", "POSITIONS", "PREDICTION_TYPES",
    "SCHEDULES", "SD15_HUB_ID", "SD_CACHE", "SHAPES", "DDPMRecipe", "DiffusionStep", "MiniSD", "MiniSDRecipe",
    "NoiseSchedule", "VAEStep", "add_unet_lora", "all_captions", "build_ddpm", "build_mini_sd", "caption_targets",
    "count_parameters", "ddim_sample", "ddim_timesteps", "ddpm_cifar10_unet", "ddpm_sample", "decode_latents",
    "denoising_loss", "digits_unet", "encode_latents", "generate", "get_recipe", "guided_noise", "load_ddpm",
    "load_sd_pipeline", "make_betas", "make_cond_unet", "make_pipeline", "make_text_encoder", "make_vae",
    "mini_sd_dir", "predict_noise", "prompt_set", "q_sample", "q_sample_iterated", "rescale_zero_terminal_snr",
    "sample_ddpm", "save_mini_sd", "save_unet_lora", "set_latent_scale", "shape_caption", "shapes_judge", "to_unit",
    "tokenize", "train_caption_tokenizer", "train_ddpm", "train_mini_sd", "train_text_to_image", "train_vae",
    "vae_images", "wrong_objective_loss",
]
