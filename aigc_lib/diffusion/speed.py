"""Stable Diffusion 1.5 built from its configs (random weights, no download) and a fast inference path for it.

``bench/diffusion.py`` measures what this module does against diffusers' defaults and its speed recipe.

The architectures are the real ones of ``stable-diffusion-v1-5`` (UNet 859.52M, VAE 83.65M, CLIP ViT-L/14 text
tower 123.06M parameters), built from their configs with random initialisation: speed and memory depend on the
shapes, not on the trained values. ``size="tiny"`` builds the same classes with the same block layout, a few
channels wide, so a CPU test runs exactly the code that runs on a GPU. The tokenizer is a CLIP-format BPE trained
offline on a few prompts (:func:`aigc_lib.diffusion.tokenizer.train_caption_tokenizer`); the text encoder's cost
depends on the sequence length (77, padded as SD pads), not on the vocabulary's contents.

:func:`speed_up` is the fast path, applied in place to a ``StableDiffusionPipeline``:

1. fused QKV projections (``pipe.fuse_qkv_projections()``): one matmul instead of three in self-attention (two in
   cross-attention); skipped, with a message, when LoRA adapters are loaded (the fused weight would drop them);
2. channels_last for the UNet and the VAE: the NHWC layout cuDNN's fastest fp16/bf16 convolutions use, and 1x1
   convolutions become plain matmuls;
3. timesteps kept on the CPU (``cpu_timesteps``): diffusers' schedulers index CPU tables with the timestep and
   compare it with 0 (PNDM: ``alphas_cumprod[t]``, ``prev_t >= 0``); with the timestep on the GPU each of those
   is a GPU -> CPU sync, so the CPU cannot queue the next step while the GPU works. Kept on the CPU, the scheduler
   math is the same (the tables live on the CPU either way) and nothing waits; the UNet gets the timestep from a
   cache of device copies (one small copy per distinct timestep, ever). diffusers does the same for XLA devices;
4. ``torch.compile`` of the UNet's forward, the VAE's ``decode`` and the text encoder's forward (fullgraph for
   UNet and VAE), with the inductor flags diffusers' speed guide recommends (:data:`INDUCTOR_FLAGS`), passed as
   per-function options so they do not change other compiled code in the process;
5. CUDA graphs (``mode="reduce-overhead"``, or ``"max-autotune"`` which autotunes as well and takes minutes to
   compile): one launch per UNet call instead of ~1,500 kernel launches; outputs are cloned out of the graph's
   memory pool, so a second replay (the negative prompt, the next step) never overwrites a tensor still in use;
6. ``torch.backends.cudnn.benchmark = True`` on CUDA (process-wide): cuDNN times its algorithms once per shape.

Every step changes only how the same math is scheduled: outputs equal the unmodified pipeline's within the
rounding of the dtype (fp32 on a CPU: ~3e-6 on the images). On a CPU ``compile=False`` keeps tests fast.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from aigc_lib.diffusion.tokenizer import train_caption_tokenizer
from aigc_lib.diffusion.training import count_parameters

__all__ = ["CONFIGS", "DEFAULT_PROMPTS", "INDUCTOR_FLAGS", "MAX_LENGTH", "SD15_PARAMETERS", "SD15_SCHEDULER",
           "SD15_TEXT", "SD15_UNET", "SD15_VAE", "SIZES", "TINY_TEXT", "TINY_UNET", "TINY_VAE", "compile_call",
           "compile_options", "has_lora", "image_size", "parameter_counts", "sd15_parts", "sd15_pipeline",
           "sd15_scheduler", "sd15_text_encoder", "sd15_tokenizer", "sd15_unet", "sd15_vae", "speed_up"]

SIZES = ("sd15", "tiny")
MAX_LENGTH = 77  # CLIP's context: SD pads every prompt to 77 tokens

# unet/config.json of stable-diffusion-v1-5 (defaults of UNet2DConditionModel not repeated): 859,520,964 parameters
SD15_UNET: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5,
    "act_fn": "silu", "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "center_input_sample": False,
}
# vae/config.json: 83,653,863 parameters, scaling_factor 0.18215 (AutoencoderKL's default)
SD15_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "act_fn": "silu", "scaling_factor": 0.18215,
}
# text_encoder/config.json (openai/clip-vit-large-patch14's text tower): 123,060,480 parameters
SD15_TEXT: dict[str, Any] = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": MAX_LENGTH, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5, "projection_dim": 768, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
# scheduler/scheduler_config.json: PNDM (PLMS), Stable Diffusion's training betas
SD15_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "skip_prk_steps": True, "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon",
}
# the same classes and block layout a few channels wide: a 64 px image, 8x8 latents, 77-token prompts
TINY_UNET = SD15_UNET | {"sample_size": 8, "layers_per_block": 1, "block_out_channels": (32, 32, 64, 64),
                         "cross_attention_dim": 32, "norm_num_groups": 8}
TINY_VAE = SD15_VAE | {"sample_size": 64, "layers_per_block": 1, "block_out_channels": (16, 16, 32, 32),
                       "norm_num_groups": 8}
TINY_TEXT = SD15_TEXT | {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "projection_dim": 32}
CONFIGS = {"sd15": (SD15_UNET, SD15_VAE, SD15_TEXT), "tiny": (TINY_UNET, TINY_VAE, TINY_TEXT)}
SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}

# torch._inductor settings of diffusers' speed guide (optimization/fp16.md, "torch.compile"): 1x1 convolutions as
# matmuls (with channels_last a free reshape), coordinate-descent tuning of each generated kernel's block sizes
# (checking all directions), and no epilogue fusion into matmul templates (which they found slower for SD)
INDUCTOR_FLAGS: dict[str, Any] = {
    "conv_1x1_as_mm": True,
    "coordinate_descent_tuning": True,
    "coordinate_descent_check_all_directions": True,
    "epilogue_fusion": False,
}
DEFAULT_PROMPTS = (
    "a photo of an astronaut riding a horse on mars",
    "a watercolor painting of a lighthouse at dusk, soft light, 4k, highly detailed",
    "a red circle at the top left",
    "0 1 2 3 4 5 6 7 8 9 , . ! ? - ( ) : ; ' \"",
)


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}.")


# ----------------------------------------------------------------------------------------------- the parts
def sd15_unet(size: str = "sd15") -> nn.Module:
    """SD 1.5's ``UNet2DConditionModel`` from its config, random weights (859.52M parameters; ``tiny``: 0.5M)."""
    from diffusers import UNet2DConditionModel

    _check_size(size)
    return UNet2DConditionModel(**CONFIGS[size][0])


def sd15_vae(size: str = "sd15") -> nn.Module:
    """SD's ``AutoencoderKL`` (8x down, 4 latent channels, scaling_factor 0.18215), random weights (83.65M)."""
    from diffusers import AutoencoderKL

    _check_size(size)
    return AutoencoderKL(**CONFIGS[size][1])


def sd15_text_encoder(size: str = "sd15", tokenizer: Any = None) -> nn.Module:
    """CLIP ViT-L/14's text tower (``CLIPTextModel``: 12 layers, width 768, quick_gelu, 77 positions, vocabulary
    49,408), random weights (123.06M). With a tokenizer, its special-token ids go into the config."""
    from transformers import CLIPTextConfig, CLIPTextModel

    _check_size(size)
    config = dict(CONFIGS[size][2])
    if tokenizer is not None:
        if len(tokenizer) > config["vocab_size"]:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, more than the text encoder's "
                             f"vocabulary of {config['vocab_size']}.")
        config |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
    return CLIPTextModel(CLIPTextConfig(**config))


def sd15_tokenizer(texts: Sequence[str] = DEFAULT_PROMPTS, max_length: int = MAX_LENGTH) -> Any:
    """A CLIP-format BPE tokenizer trained offline on ``texts``, padding every prompt to ``max_length`` (77)."""
    tokenizer = train_caption_tokenizer(list(texts), max_length=max_length)
    tokenizer.model_max_length = max_length
    return tokenizer


def sd15_scheduler() -> Any:
    """SD 1.5's default scheduler: ``PNDMScheduler`` (PLMS; 50 steps make 51 UNet calls) with SD's betas."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(**SD15_SCHEDULER)


def sd15_parts(size: str = "sd15", *, tokenizer: Any = None, seed: int = 0) -> dict[str, nn.Module]:
    """``{"unet", "vae", "text_encoder"}`` in fp32 on the CPU, initialised from ``seed`` (identical every time)."""
    torch.manual_seed(seed)
    return {"unet": sd15_unet(size), "vae": sd15_vae(size), "text_encoder": sd15_text_encoder(size, tokenizer)}


def sd15_pipeline(size: str = "sd15", *, tokenizer: Any = None, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu", seed: int = 0,
                  parts: Mapping[str, nn.Module] | None = None) -> Any:
    """A diffusers ``StableDiffusionPipeline`` with SD 1.5's architectures and scheduler, random weights.

    ``parts`` (from :func:`sd15_parts`) are deep-copied, so several pipelines can start from the same weights;
    without it the parts are built from ``seed``. No safety checker (random weights make no images to check).
    """
    from diffusers import StableDiffusionPipeline

    tokenizer = tokenizer if tokenizer is not None else sd15_tokenizer()
    parts = {k: copy.deepcopy(v) for k, v in parts.items()} if parts is not None else \
        sd15_parts(size, tokenizer=tokenizer, seed=seed)
    for part in parts.values():
        part.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=tokenizer,
                                   unet=parts["unet"], scheduler=sd15_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def parameter_counts(size: str = "sd15") -> dict[str, int]:
    """Parameters of each part, counted on the meta device (no memory, well under a second)."""
    with torch.device("meta"):
        parts = {"unet": sd15_unet(size), "vae": sd15_vae(size), "text_encoder": sd15_text_encoder(size)}
    return {name: count_parameters(part) for name, part in parts.items()}


def image_size(pipe: Any) -> int:
    """The pipeline's native image side in pixels: latent size x the VAE's 8x (512 for SD 1.5, 64 for tiny)."""
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


# ----------------------------------------------------------------------------------------------- the fast path
def compile_options(mode: str = "reduce-overhead", inductor_flags: bool = True) -> dict[str, Any]:
    """The inductor options of a ``torch.compile`` ``mode`` plus :data:`INDUCTOR_FLAGS` (per-function options)."""
    from torch._inductor import list_mode_options

    return {**list_mode_options(mode), **(INDUCTOR_FLAGS if inductor_flags else {})}


def _clone_outputs(out: Any) -> Any:
    """A copy of a model's outputs outside a CUDA graph's memory pool (tensors, tuples, ModelOutput/BaseOutput)."""
    if torch.is_tensor(out):
        return out.clone()
    if isinstance(out, (tuple, list)) and not hasattr(out, "keys"):
        return type(out)(_clone_outputs(o) for o in out)
    if isinstance(out, Mapping):  # diffusers BaseOutput and transformers ModelOutput are ordered dicts
        return type(out)(**{k: _clone_outputs(v) for k, v in out.items()})
    return out


def compile_call(fn: Callable[..., Any], *, options: Mapping[str, Any], fullgraph: bool) -> Callable[..., Any]:
    """``torch.compile(fn)`` with inductor ``options``; with CUDA graphs the outputs are cloned out of the graph's
    pool (a later replay reuses that memory: the negative prompt's encoding would overwrite the prompt's)."""
    compiled = torch.compile(fn, fullgraph=fullgraph, options=dict(options))
    if not options.get("triton.cudagraphs"):
        return compiled

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return _clone_outputs(compiled(*args, **kwargs))

    return call


def _timesteps_on_cpu(scheduler: Any) -> None:
    """Make ``scheduler.set_timesteps`` ignore the device: the timesteps stay on the CPU (no syncs in ``step``)."""
    if getattr(scheduler, "_aigc_cpu_timesteps", False):
        return
    original = scheduler.set_timesteps

    @functools.wraps(original)
    def set_timesteps(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("device", None)
        if len(args) > 1:  # set_timesteps(num_inference_steps, device, ...)
            args = (args[0], None, *args[2:])
        return original(*args, **kwargs)

    scheduler.set_timesteps = set_timesteps
    scheduler._aigc_cpu_timesteps = True


def _timestep_to_device(forward: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a UNet forward so a CPU timestep arrives as a device tensor, from a cache (no copy after the first
    call with that value, and never a sync: the key is read on the CPU)."""
    cache: dict[tuple[Any, ...], torch.Tensor] = {}

    @functools.wraps(forward)
    def call(sample: torch.Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.is_tensor(timestep) and timestep.device != sample.device:
            if timestep.ndim == 0:
                key = (timestep.item(), timestep.dtype, sample.device)
                if key not in cache:
                    cache[key] = timestep.to(sample.device)
                timestep = cache[key]
            else:
                timestep = timestep.to(sample.device, non_blocking=True)
        return forward(sample, timestep, *args, **kwargs)

    return call


def has_lora(model: nn.Module) -> bool:
    """Whether peft adapters are loaded into a diffusers model."""
    return bool(getattr(model, "_hf_peft_config_loaded", False))


def speed_up(pipe: Any, *, compile: bool = True, mode: str = "reduce-overhead", fullgraph: bool = True,
             fuse_qkv: bool = True, channels_last: bool = True, cpu_timesteps: bool = True,
             compile_text_encoder: bool = True, inductor_flags: bool = True, cudnn_benchmark: bool = True,
             verbose: bool = False) -> Any:
    """Make a ``StableDiffusionPipeline`` fast in place (see the module docstring for each trick); returns it.

    Safe to call on a CPU (``compile=False`` there in tests: inductor's CPU compile takes minutes for SD).
    ``mode``: a ``torch.compile`` mode; ``"reduce-overhead"`` (CUDA graphs) or ``"max-autotune"`` (CUDA graphs
    + autotuned matmul/conv kernels, long compile) or ``"max-autotune-no-cudagraphs"``/``"default"``.
    The first call (or two, for CUDA graphs) compiles: time pipelines after a warm-up.
    """
    if getattr(pipe, "_aigc_speed_up", None) is not None:  # a second call would compile compiled code
        print(f"[aigc.diffusion.speed] this pipeline is already sped up ({', '.join(pipe._aigc_speed_up)}): unchanged")
        return pipe
    applied = []
    if fuse_qkv:
        if has_lora(pipe.unet):
            print("[aigc.diffusion.speed] LoRA adapters are loaded: QKV projections left unfused "
                  "(fuse the LoRA first with pipe.fuse_lora() to fuse them)")
        else:
            pipe.fuse_qkv_projections()
            applied.append("fused QKV")
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    unet_forward = pipe.unet.forward
    if compile:
        options = compile_options(mode, inductor_flags)
        unet_forward = compile_call(unet_forward, options=options, fullgraph=fullgraph)
        pipe.vae.decode = compile_call(pipe.vae.decode, options=options, fullgraph=fullgraph)
        if compile_text_encoder:
            pipe.text_encoder.forward = compile_call(pipe.text_encoder.forward, options=options, fullgraph=False)
        applied.append(f"torch.compile {mode}" + (" + inductor flags" if inductor_flags else ""))
    if cpu_timesteps:
        _timesteps_on_cpu(pipe.scheduler)
        unet_forward = _timestep_to_device(unet_forward)
        applied.append("CPU timesteps")
    if unet_forward is not pipe.unet.forward:
        pipe.unet.forward = unet_forward  # an instance attribute: nn.Module.__call__ runs it, config etc. stay
    if cudnn_benchmark and pipe.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        applied.append("cudnn.benchmark")
    if verbose:
        print("[aigc.diffusion.speed] " + ", ".join(applied))
    pipe._aigc_speed_up = tuple(applied)
    return pipe
