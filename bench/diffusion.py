"""Diffusion speed: SD 1.5 inference (diffusers defaults, diffusers' speed recipe, ours), DDPM training, SD LoRA.

    python -m bench.diffusion                       # everything, on a CUDA GPU (writes three result files)
    python -m bench.diffusion --parts inference     # one section: inference, ddpm or lora
    python -m bench.diffusion --smoke               # tiny models, a few steps: seconds on a CPU (CI)

One run, one GPU, random-init weights of the real architectures (aigc_lib.diffusion.speed: SD 1.5's UNet, VAE and
CLIP text encoder built from their configs; aigc_lib.diffusion.ddpm_cifar10_unet), so nothing is downloaded.

- inference: text to image at 512 px, batch 1, classifier-free guidance 7.5, PNDM 50 steps (SD 1.5's scheduler),
  the same prompt, weights and initial latents in every variant: diffusers fp16 defaults, diffusers' speed recipe,
  and ``aigc_lib.diffusion.speed.speed_up``; UNet it/s, end-to-end seconds, peak memory, the difference of the
  outputs from the defaults' (images on identical latents, and one UNet call on identical inputs);
- ddpm: the 35.7M DDPM CIFAR-10 UNet at batch 128, bf16: the aigc Trainer + DiffusionStep against the loop of
  diffusers' train_unconditional example; images/s, step time, peak memory, loss after equal steps;
- lora: SD 1.5's UNet frozen in bf16 (fp16 on a T4) with peft LoRA on the attention projections (fp32), 512 px
  (64x64 latents), the frozen text encoder run in the step, with and without gradient checkpointing.
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aigc_lib.data import TensorLoader, make_shapes
from aigc_lib.diffusion import (
    DiffusionStep,
    NoiseSchedule,
    add_unet_lora,
    count_parameters,
    ddpm_cifar10_unet,
    tokenize,
)
from aigc_lib.diffusion.speed import (
    INDUCTOR_FLAGS,
    image_size,
    parameter_counts,
    sd15_parts,
    sd15_pipeline,
    sd15_tokenizer,
    speed_up,
)
from aigc_lib.train import TrainConfig, Trainer
from bench.harness import (
    Row,
    Timer,
    default_device,
    device_report,
    format_value,
    free_memory,
    measure_training,
    peak_memory,
    speedup,
    time_fn,
    update_agreement,
    weight_vector,
    write_results,
)
from bench.trainer import fit_more

PROMPT = "a photo of an astronaut riding a horse on mars"
GUIDANCE = 7.5
VARIANTS = {  # --variants key: row name
    "defaults": "diffusers defaults",
    "recipe": "diffusers speed recipe",
    "ours": "aigc diffusion.speed.speed_up",
}
TRAIN_VARIANTS = {"plain": "diffusers train_unconditional loop", "ours": "aigc Trainer + DiffusionStep"}
SECTIONS = ("inference", "ddpm", "lora")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
UNET_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2}  # one UNet call: max |diff| / max |defaults' output|
LORA_TARGET_GIB = 15.0
TARGETS = {
    "inference": "ours >= 150 UNet it/s at batch 1 with guidance; <= 0.45 s end to end per 512 px image at 50 steps "
                 "(text encoding and VAE decode included); >= 1.0x the diffusers speed recipe and >= 5x its "
                 "defaults; outputs equal within fp16/bf16 tolerance (on an H100)",
    "ddpm": "ours >= 2.7k images/s and >= 2x the plain diffusers loop (H100, batch 128, bf16)",
    "lora": f"SD 1.5 LoRA fine-tuning at 512 px under {LORA_TARGET_GIB:.0f} GB peak",
}
REFERENCE = ("H100, by the issue's author, SD 1.5 UNet at batch 2 fp16: 23.7 it/s eager, 47.3 it/s channels_last + "
             "torch.compile, 153 it/s channels_last + fused QKV + torch.compile mode='reduce-overhead' (CUDA graphs)")


def _dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


# --------------------------------------------------------------------------------------------- inference
class StepClock:
    """``callback_on_step_end`` that marks the end of every denoising step (CUDA events: no sync in the loop)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: list[Any] = []

    def __call__(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())
        return kwargs

    def seconds_per_step(self) -> float:
        """Mean time of one loop iteration (UNet, guidance, scheduler) from the first step's end to the last's."""
        if len(self.marks) < 2:
            return float("nan")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            total = self.marks[0].elapsed_time(self.marks[-1]) / 1e3
        else:
            total = self.marks[-1] - self.marks[0]
        return total / (len(self.marks) - 1)


def diffusers_recipe(pipe: Any, *, compile: bool, mode: str) -> Any:
    """diffusers' speed guide (optimization/fp16.md, "torch.compile"; tutorials/fast_diffusion.md), as written
    there: fused QKV, channels_last UNet and VAE, ``torch.compile(unet)`` and ``torch.compile(vae.decode)`` with
    ``mode="max-autotune", fullgraph=True``. Its global inductor flags are set around the variant's calls."""
    pipe.fuse_qkv_projections()
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if compile:
        pipe.unet = torch.compile(pipe.unet, mode=mode, fullgraph=True)
        pipe.vae.decode = torch.compile(pipe.vae.decode, mode=mode, fullgraph=True)
    return pipe


def _unet_probe(pipe: Any, size: int, cross_dim: int, device: torch.device, dtype: torch.dtype,
                seed: int) -> Callable[[], Any]:
    """One UNet call at batch 2 (a guided batch-1 step) on fixed inputs: for it/s and the one-call difference."""
    g = torch.Generator().manual_seed(seed + 1)
    inputs = {"sample": torch.randn(2, 4, size, size, generator=g).to(device, dtype),
              "timestep": torch.tensor(981, device=device),
              "encoder_hidden_states": torch.randn(2, 77, cross_dim, generator=g).to(device, dtype)}

    def call() -> Any:
        with torch.no_grad():  # as inside the pipeline (grad mode is part of what compiled code is keyed on)
            return pipe.unet(inputs["sample"], inputs["timestep"],
                             encoder_hidden_states=inputs["encoder_hidden_states"], return_dict=False)[0]

    return call


def run_inference_variant(key: str, parts: dict[str, nn.Module], tokenizer: Any, size: str, device: torch.device,
                          dtype: torch.dtype, steps: int, warmup: int, repeats: int, unet_repeats: int,
                          compile: bool, mode: str, recipe_mode: str, seed: int
                          ) -> tuple[Row, torch.Tensor, torch.Tensor]:
    """Build one variant from the shared weights, warm it up, time it; returns the row, the image and one UNet
    output (both float32 on the CPU)."""
    pipe = sd15_pipeline(size, tokenizer=tokenizer, dtype=dtype, device=device, parts=parts)
    pipe.set_progress_bar_config(disable=True)  # every variant: no tqdm in the timings
    side = image_size(pipe)
    latent = pipe.unet.config.sample_size
    with ExitStack() as stack:
        if key == "recipe":
            stack.enter_context(torch._inductor.config.patch(INDUCTOR_FLAGS))  # the guide sets these globally
            diffusers_recipe(pipe, compile=compile, mode=recipe_mode)
        elif key == "ours":
            speed_up(pipe, compile=compile, mode=mode)
        latents = torch.randn(1, 4, latent, latent, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
        clock = StepClock(device)

        def generate() -> torch.Tensor:
            return pipe(PROMPT, height=side, width=side, num_inference_steps=steps, guidance_scale=GUIDANCE,
                        latents=latents, output_type="pt", callback_on_step_end=clock).images

        with Timer(device) as first:
            generate()  # compiles (torch.compile), records CUDA graphs on later calls
        for _ in range(warmup - 1):
            generate()
        e2e, per_step = [], []
        with peak_memory(device) as peak:
            for _ in range(repeats):
                clock.marks = []
                with Timer(device) as timer:
                    image = generate()
                e2e.append(timer.seconds)
                per_step.append(clock.seconds_per_step())
        image = image.float().cpu()
        probe = _unet_probe(pipe, latent, pipe.unet.config.cross_attention_dim, device, dtype, seed)
        unet_out = probe().float().cpu()
        unet_timing = time_fn(probe, device=device, warmup=3 if device.type == "cuda" else 1, repeats=unet_repeats)
        calls = len(clock.marks)
    e2e_s = statistics.median(e2e)
    row = {"name": VARIANTS[key], "dtype": _dtype_name(dtype), "compile": compile and key != "defaults",
           "mode": {"defaults": "eager", "recipe": recipe_mode, "ours": mode}[key] if compile else "eager",
           "e2e_s": e2e_s, "images/s": 1 / e2e_s, "loop_it/s": 1 / statistics.median(per_step),
           "unet_it/s": 1 / unet_timing.median_s, "unet_calls": calls, "first_call_s": first.seconds,
           peak.key: peak.gib}
    return row, image, unet_out


def inference_section(parts: dict[str, nn.Module], tokenizer: Any, size: str, device: torch.device,
                      variants: Sequence[str], dtype: torch.dtype, steps: int, warmup: int, repeats: int,
                      unet_repeats: int, compile: bool, mode: str, recipe_mode: str, seed: int) -> list[Row]:
    """Every variant on the same weights and latents; ratios and output differences against the defaults."""
    gpu = device.type == "cuda"
    rows, images, unet_outs = [], {}, {}
    cudnn_benchmark = torch.backends.cudnn.benchmark
    for key in variants:
        free_memory(device)
        vdtype = (torch.float16 if key == "defaults" else dtype) if gpu else torch.float32  # CPU: fp32 only
        start = time.perf_counter()
        row, images[key], unet_outs[key] = run_inference_variant(
            key, parts, tokenizer, size, device, vdtype, steps, warmup, repeats, unet_repeats, compile, mode,
            recipe_mode, seed)
        torch.backends.cudnn.benchmark = cudnn_benchmark  # speed_up sets it process-wide: later sections start equal
        rows.append(row)
        print(f"{row['name']}: {row['e2e_s']:.3f} s per image, {row['loop_it/s']:.1f} it/s in the loop, "
              f"{row['unet_it/s']:.1f} UNet it/s ({time.perf_counter() - start:.0f} s)", flush=True)
    free_memory(device)  # the last variant's pipeline, compiled code and CUDA graph pools
    if "defaults" in images:
        ref_img, ref_unet = images["defaults"], unet_outs["defaults"]
        for row, key in zip(rows, variants):
            diff = (images[key] - ref_img).abs()
            row["max_abs_diff"] = diff.max().item()
            row["mean_abs_diff"] = diff.mean().item()
            row["unet_rel_diff"] = ((unet_outs[key] - ref_unet).abs().max() / ref_unet.abs().max()).item()
            row["equal_within_tol"] = row["unet_rel_diff"] <= UNET_TOLERANCE[row["dtype"]] and all(
                math.isfinite(row[k]) for k in ("max_abs_diff", "unet_rel_diff"))
        rows = speedup(rows, VARIANTS["defaults"], key="e2e_s", column="vs defaults")
    if "recipe" in variants:
        rows = speedup(rows, VARIANTS["recipe"], key="e2e_s", column="vs recipe")
    return rows


def inference_targets(rows: Sequence[Row], steps: int) -> list[str]:
    ours = next((r for r in rows if r["name"] == VARIANTS["ours"]), None)
    if ours is None:
        return ["- (no row of ours)"]

    def value(key: str, spec: str) -> str:
        return format(ours[key], spec) if ours.get(key) is not None else "n/a"

    equal = "equal within tolerance" if ours.get("equal_within_tol") else "NOT within tolerance or not measured"
    return [
        (f"- UNet it/s in the pipeline's loop: {value('loop_it/s', '.1f')} (target >= 150); the UNet alone at "
         f"batch 2: {value('unet_it/s', '.1f')}"),
        f"- end to end per image ({steps} steps): {value('e2e_s', '.3f')} s (target <= 0.45 s at 50 steps)",
        (f"- vs the diffusers speed recipe: {value('vs recipe', '.2f')}x (target >= 1.0x); vs the defaults: "
         f"{value('vs defaults', '.2f')}x (target >= 5x)"),
        (f"- outputs vs the defaults on identical latents: images max |diff| {value('max_abs_diff', '.3g')}, mean "
         f"{value('mean_abs_diff', '.3g')} (pixels in [0, 1]); one UNet call max |diff| / max |output| "
         f"{value('unet_rel_diff', '.3g')} (tolerance {UNET_TOLERANCE[ours['dtype']]:g} in {ours['dtype']}): "
         f"{equal}"),
    ]


# --------------------------------------------------------------------------------------------- DDPM training
def ddpm_unet(smoke: bool) -> nn.Module:
    """The DDPM CIFAR-10 UNet (35.7M); smoke: the same blocks at 16 px, 16-32 channels wide."""
    from diffusers import UNet2DModel

    if not smoke:
        return ddpm_cifar10_unet()
    with torch.device("meta"):
        config = {k: v for k, v in ddpm_cifar10_unet().config.items() if not k.startswith("_")}
    return UNet2DModel(**config | {"sample_size": 16, "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1,
                                   "norm_num_groups": 8})


DDPM_OPTIM = {"lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6, "eps": 1e-8}  # train_unconditional's


def plain_ddpm_loop(smoke: bool, images: torch.Tensor, device: torch.device, batch: int, warmup: int, steps: int,
                    seed: int, precision: str) -> tuple[Row, dict[str, torch.Tensor]]:
    """diffusers' examples/unconditional_image_generation/train_unconditional.py, its loop as written: Accelerate
    (mixed precision), a DataLoader over CPU tensors (the example's transforms already applied), DDPMScheduler
    .add_noise, ``unet(...).sample``, F.mse_loss, clip 1.0, AdamW (not fused), a constant lr scheduler,
    ``loss.item()`` for the logs every step. EMA off (as in ours)."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    torch.manual_seed(seed)
    accelerator = Accelerator(mixed_precision="no" if precision == "fp32" else precision, cpu=device.type == "cpu")
    model = ddpm_unet(smoke)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(model.parameters(), **DDPM_OPTIM)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch, shuffle=True,
                                         num_workers=0)  # the example's --dataloader_num_workers default
    lr_scheduler = get_scheduler("constant", optimizer=optimizer)
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)

    def run(n: int) -> None:
        done = 0
        while done < n:
            model.train()
            for (clean_images,) in loader:
                noise = torch.randn(clean_images.shape, device=clean_images.device)
                bsz = clean_images.shape[0]
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,),
                                          device=clean_images.device).long()
                noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps)
                with accelerator.accumulate(model):
                    model_output = model(noisy_images, timesteps).sample
                    loss = F.mse_loss(model_output.float(), noise.float())
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
                _ = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "step": done}  # the logs
                done += 1
                if done == n:
                    break

    row = measure_training(run, device=device, warmup=warmup, steps=steps, items_per_step=batch)
    state = {k: v.detach().float().cpu() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    return row, state


def trainer_ddpm(smoke: bool, images: torch.Tensor, device: torch.device, batch: int, warmup: int, steps: int,
                 seed: int, precision: str, compile: bool) -> tuple[Row, dict[str, torch.Tensor]]:
    """The aigc Trainer + DiffusionStep: images resident on the device (TensorLoader), autocast, channels_last
    and torch.compile on a GPU, fused AdamW (same hyper-parameters), clip 1.0, metrics read every 100 steps."""
    torch.manual_seed(seed)
    gpu = device.type == "cuda"
    model = ddpm_unet(smoke)
    optimizer = torch.optim.AdamW(model.parameters(), **DDPM_OPTIM, fused=True)
    data = TensorLoader(images, batch_size=batch, seed=seed, device=device, channels_last=gpu)
    config = TrainConfig(max_steps=1, max_grad_norm=1.0, precision=precision, device=str(device), compile=compile,
                         channels_last=gpu, log_every=100, progress=False)
    trainer = Trainer(model, optimizer, DiffusionStep(NoiseSchedule()), data, config)
    row = measure_training(lambda n: fit_more(trainer, n), device=device, warmup=warmup, steps=steps,
                           items_per_step=batch)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    return row, state


@torch.no_grad()
def ddpm_eval_loss(smoke: bool, state: dict[str, torch.Tensor], images: torch.Tensor, device: torch.device,
                   seed: int) -> float:
    """Noise-prediction MSE on held-out images with fixed timesteps and noise, fp32 eager, eval mode (a fresh
    model with the trained weights, so no variant's autocast or compile wrapper is involved)."""
    model = ddpm_unet(smoke)
    model.load_state_dict(state)
    model.to(device).eval()
    schedule = NoiseSchedule().to(device)
    g = torch.Generator().manual_seed(seed + 7)
    t = torch.randint(0, schedule.num_steps, (len(images),), generator=g).to(device)
    noise = torch.randn(images.shape, generator=g).to(device)
    x0 = images.to(device)
    losses = [F.mse_loss(model(schedule.q_sample(a, b, c), b).sample, c, reduction="sum")
              for a, b, c in zip(x0.split(64), t.split(64), noise.split(64))]
    return (torch.stack(losses).sum() / noise.numel()).item()


def ddpm_section(smoke: bool, device: torch.device, batch: int, warmup: int, steps: int, compile: bool,
                 seed: int) -> tuple[list[Row], Row]:
    gpu = device.type == "cuda"
    precision = ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16") if gpu else "fp32"
    side = 16 if smoke else 32
    n_train = batch * max(8, math.ceil((warmup + steps) / 4))  # a few epochs' worth: epoch ends are counted
    n_held_out = 32 if smoke else 256
    data = make_shapes(n_train + n_held_out, size=side, seed=seed)
    train, held_out = data.images[:n_train], data.images[n_train:]
    torch.manual_seed(seed)  # both loops start from these weights (same seed, same UNet)
    init_model = ddpm_unet(smoke)
    names = [n for n, _ in init_model.named_parameters()]  # parameters, not buffers
    init, weights = weight_vector(init_model.parameters()), {}
    rows = []
    for key, name in TRAIN_VARIANTS.items():
        free_memory(device)
        start = time.perf_counter()
        if key == "plain":
            row, state = plain_ddpm_loop(smoke, train, device, batch, warmup, steps, seed, precision)
        else:
            row, state = trainer_ddpm(smoke, train, device, batch, warmup, steps, seed, precision, compile)
        row = {"name": name, "batch": batch, "precision": precision,
               "compile": compile and key == "ours", **row, "step_ms": 1e3 * batch / row["images/s"],
               "loss_after": ddpm_eval_loss(smoke, state, held_out, device, seed)}
        weights[key] = weight_vector(state[n] for n in names)
        row.update(update_agreement(init, weights["plain"], weights[key]))  # the plain loop runs first
        rows.append(row)
        print(f"{row['name']}: {row['images/s']:,.0f} images/s, loss {row['loss_after']:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    free_memory(device)
    with torch.device("meta"):  # counts shapes without allocating
        n_params = count_parameters(ddpm_unet(smoke))
    config = {"model": f"DDPM CIFAR-10 UNet {n_params / 1e6:.2f}M"
                       + (" (smoke: 16 px, 16-32 wide)" if smoke else ""),
              "data": f"captioned shapes {side} px RGB in [-1, 1] (aigc_lib.data.make_shapes), {n_train} images",
              "batch": batch, "precision": precision, "warmup": warmup, "timed_steps": steps, "held_out": n_held_out,
              "optimizer": "AdamW lr 1e-4 betas (0.95, 0.999) wd 1e-6, clip 1.0"}
    return speedup(rows, TRAIN_VARIANTS["plain"], key="images/s", higher_is_better=True, column="vs plain loop"), \
        config


# --------------------------------------------------------------------------------------------- LoRA
def lora_row(parts: dict[str, nn.Module], tokenizer: Any, device: torch.device, batch: int, checkpointing: bool,
             rank: int, warmup: int, steps: int, seed: int) -> Row:
    """One LoRA configuration with the aigc Trainer + DiffusionStep: UNet and text encoder frozen in the half
    dtype, LoRA weights (peft) in fp32 trained under autocast, precomputed latents, captions encoded each step."""
    from diffusers.training_utils import cast_training_params

    gpu = device.type == "cuda"
    precision = ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16") if gpu else "fp32"
    weights = DTYPES[precision]
    torch.manual_seed(seed)
    unet = copy.deepcopy(parts["unet"]).to(device, weights)
    text_encoder = copy.deepcopy(parts["text_encoder"]).to(device, weights).requires_grad_(False)
    trainable = add_unet_lora(unet, rank=rank)  # freezes the UNet, adds LoRA to to_q, to_k, to_v, to_out.0
    cast_training_params(unet, dtype=torch.float32)  # the LoRA weights train in fp32 (diffusers' LoRA scripts)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    side = unet.config.sample_size
    n = batch * 4
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, 4, side, side, generator=g)  # stand-ins for VAE-encoded 512 px images x 0.18215
    ids = tokenize(tokenizer, [PROMPT] * n)
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4, fused=gpu)
    step = DiffusionStep(NoiseSchedule.stable_diffusion(), unet="unet", text_encoder="text_encoder",
                         empty_ids=tokenize(tokenizer, [""]), caption_dropout=0.1)
    config = TrainConfig(max_steps=1, precision=precision, device=str(device), log_every=100, progress=False,
                         max_grad_norm=1.0)
    trainer = Trainer({"unet": unet, "text_encoder": text_encoder}, {"model": optimizer}, step,
                      TensorLoader(latents, ids, batch_size=batch, seed=seed, device=device), config)
    row = measure_training(lambda k: fit_more(trainer, k), device=device, warmup=warmup, steps=steps,
                           items_per_step=batch)
    peak_key = next(k for k in row if k.endswith("_gib"))
    loss = trainer.history["train"][-1]["loss"] if trainer.history["train"] else float("nan")
    return {"name": f"LoRA r{rank}" + (" + grad checkpointing" if checkpointing else ""), "batch": batch,
            "precision": precision, "grad_ckpt": checkpointing, "lora_params": trainable, **row,
            "step_ms": 1e3 * batch / row["images/s"], "loss": loss,
            f"under_{LORA_TARGET_GIB:.0f}gb": row[peak_key] < LORA_TARGET_GIB if peak_key == "peak_gpu_mem_gib"
            else None}


def lora_section(parts: dict[str, nn.Module], tokenizer: Any, device: torch.device, batches: Sequence[int],
                 checkpointing: Sequence[bool], rank: int, warmup: int, steps: int, seed: int) -> list[Row]:
    rows = []
    for batch in batches:
        for ckpt in checkpointing:
            free_memory(device)
            start = time.perf_counter()
            rows.append(lora_row(parts, tokenizer, device, batch, ckpt, rank, warmup, steps, seed))
            row = rows[-1]
            peak = next(v for k, v in row.items() if k.endswith("_gib"))
            print(f"{row['name']} batch {batch}: {row['images/s']:.2f} images/s, peak {peak:.2f} GiB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    free_memory(device)
    return rows


def lora_targets(rows: Sequence[Row]) -> list[str]:
    lines = []
    for row in rows:
        peak = row.get("peak_gpu_mem_gib")
        verdict = "not a GPU run" if peak is None else (
            f"{peak:.2f} GiB: {'under' if peak < LORA_TARGET_GIB else 'OVER'} {LORA_TARGET_GIB:.0f} GB")
        lines.append(f"- {row['name']}, batch {row['batch']}: {row['images/s']:.2f} images/s, peak {verdict}")
    return lines


# --------------------------------------------------------------------------------------------- report
def _append(md_path: Any, sections: dict[str, list[str]]) -> None:
    with md_path.open("a") as md:
        for title, lines in sections.items():
            md.write(f"\n## {title}\n\n" + "\n".join(lines) + "\n")


def inference_notes(args: argparse.Namespace, size: str, steps: int, device: torch.device) -> list[str]:
    counts = parameter_counts(size)
    lines = [
        f"- Reference, not measured here: {REFERENCE}.",
        (f"- Models: SD 1.5's architectures from their configs, random weights ({size}: UNet "
         f"{counts['unet'] / 1e6:.2f}M, VAE {counts['vae'] / 1e6:.2f}M, text encoder "
         f"{counts['text_encoder'] / 1e6:.2f}M parameters), an offline CLIP-format tokenizer padding to 77 tokens; "
         f"PNDM (SD 1.5's scheduler): {steps} steps = {steps + 1} UNet calls at batch 2 (guidance {GUIDANCE}); "
         "the same weights, prompt and initial latents (`latents=`) in every variant; `output_type='pt'`; "
         "progress bars off in every variant."),
        ("- Variants: `diffusers defaults` = the pipeline as `from_pretrained(torch_dtype=torch.float16)` makes it "
         "(SDPA attention, eager). `diffusers speed recipe` = optimization/fp16.md's torch.compile section: "
         "inductor flags conv_1x1_as_mm, coordinate_descent_tuning (+ check_all_directions), epilogue_fusion off; "
         "fused QKV; channels_last UNet and VAE; torch.compile of the UNet and of vae.decode, fullgraph, "
         f"mode {args.recipe_mode!r} (CUDA graphs included in max-autotune). `aigc diffusion.speed.speed_up` = the "
         f"same tricks with mode {args.mode!r} as per-function options, plus the text encoder compiled, timesteps kept "
         "on the CPU (no GPU->CPU sync in the scheduler's step), outputs cloned out of CUDA graph pools, "
         "cudnn.benchmark (aigc_lib/diffusion/speed.py)."),
        ("- Columns: `e2e_s` median wall time of one pipeline call (prompt to image tensor, text encoding and VAE "
         "decode included), `images/s` = 1 / e2e_s; `loop_it/s` UNet calls per second inside the pipeline's "
         "denoising loop (CUDA events at the end of every step: UNet, guidance and scheduler); `unet_it/s` the UNet "
         "alone at batch 2, one call after another; `first_call_s` the first pipeline call (compilation); peak "
         "memory over the timed calls (weights included). `max_abs_diff`/`mean_abs_diff`: the images against the "
         "defaults' on identical latents (pixels in [0, 1]); `unet_rel_diff`: one UNet call on identical inputs, "
         "max |diff| / max |defaults' output|; `equal_within_tol` compares that with "
         f"{UNET_TOLERANCE} by dtype. Random weights give no meaningful image; after {steps} steps small rounding "
         "differences can grow, so the one-call difference is the tolerance check and the image columns are shown "
         "as measured. `vs defaults`, `vs recipe`: e2e time ratios (> 1: faster)."),
    ]
    if device.type != "cuda":
        lines.append("- Not a GPU run: tiny models, fp32 only (fp16 needs a GPU), torch.compile only with --compile; "
                     "checks the code path and that every variant gives the defaults' output.")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps: seconds on a CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--parts", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="which sections to run (default: all; each writes its own result files)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="inference variants (default: all)")
    parser.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16",
                        help="dtype of the recipe and of ours (the defaults are fp16); default fp16")
    parser.add_argument("--mode", default="reduce-overhead", help="torch.compile mode of ours")
    parser.add_argument("--recipe-mode", default=None,
                        help="torch.compile mode of the diffusers recipe (default max-autotune; CPU: default)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile in the recipe, ours and the DDPM trainer (default: on GPUs only)")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default 50; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed pipeline calls first (default 3; smoke 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed pipeline calls (default 5; smoke 1)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed training steps (DDPM 100, LoRA 10)")
    parser.add_argument("--train-warmup", type=int, default=None, help="untimed training steps first (20, LoRA 3)")
    parser.add_argument("--ddpm-batch", type=int, default=None, help="DDPM batch (default 128; smoke 8)")
    parser.add_argument("--lora-batch", type=int, nargs="+", default=None, help="LoRA batches (default 1 4)")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the results (default bench/results)")
    args = parser.parse_args(argv)
    for name in ("steps", "warmup", "repeats", "train_steps", "train_warmup", "ddpm_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    gpu = device.type == "cuda"
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench.diffusion: --device cuda but this machine has no CUDA GPU.")
        return 2
    if not gpu and not args.smoke:
        print(f"bench.diffusion: no CUDA GPU ({device.type}): SD 1.5 in fp16 with CUDA graphs needs one, so this runs "
              "the --smoke sizes instead (tiny models, fp32): it checks the code path and measures no speed.",
              flush=True)
        args.smoke = True
    size = "tiny" if args.smoke else "sd15"
    compile = gpu if args.compile is None else args.compile
    args.recipe_mode = args.recipe_mode or ("max-autotune" if gpu else "default")
    steps = args.steps or (2 if args.smoke else 50)
    warmup = args.warmup or (1 if args.smoke else 3)
    repeats = args.repeats or (1 if args.smoke else 5)
    train_steps = args.train_steps or (2 if args.smoke else 100)
    train_warmup = args.train_warmup or (1 if args.smoke else 20)
    info = device_report(device)  # measure the machine before the workloads
    threads = torch.get_num_threads()
    if args.smoke and not gpu:
        # tiny models gain nothing from threads, and on a shared CPU OpenMP's spinning threads make every small
        # op wait for a busy core: one thread ran a tiny pipeline call 100x faster on a loaded 2-core machine
        torch.set_num_threads(1)
    try:
        return _run(args, device, info, size, compile, steps, warmup, repeats, train_steps, train_warmup)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, device: torch.device, info: Row, size: str, compile: bool, steps: int,
         warmup: int, repeats: int, train_steps: int, train_warmup: int) -> int:
    gpu = device.type == "cuda"
    out = {"out_dir": args.out} if args.out else {}
    tokenizer = sd15_tokenizer()
    parts = sd15_parts(size, tokenizer=tokenizer, seed=args.seed) if {"inference", "lora"} & set(args.parts) \
        else {}
    written = []
    if "inference" in args.parts:
        rows = inference_section(parts, tokenizer, size, device, args.variants, DTYPES[args.dtype], steps, warmup,
                                 repeats, 50 if gpu else 2, compile, args.mode, args.recipe_mode, args.seed)
        config = {"models": f"SD 1.5 architectures ({size}), random weights", "image_px": 512 if size == "sd15"
                  else 64, "batch": 1, "guidance": GUIDANCE, "scheduler": "PNDM", "steps": steps, "warmup": warmup,
                  "repeats": repeats, "prompt": PROMPT}
        json_path, md_path = write_results("diffusion-inference", rows, info, config, **out)
        _append(md_path, {"Targets": [f"- Issue: {TARGETS['inference']}."] + inference_targets(rows, steps),
                          "Notes": inference_notes(args, size, steps, device)})
        written.append((json_path, md_path))
    if "ddpm" in args.parts:
        batch = args.ddpm_batch or (8 if args.smoke else 128)
        rows, config = ddpm_section(args.smoke, device, batch, train_warmup, train_steps, compile, args.seed)
        ours = rows[-1]
        lines = [f"- Issue: {TARGETS['ddpm']}.",
                 (f"- ours: {ours['images/s']:,.0f} images/s (target >= 2,700), "
                  f"{format_value(ours['vs plain loop'])}x the plain loop (target >= 2x)")]
        notes = [(f"- `loss_after`: noise-prediction MSE on {config['held_out']} held-out images with fixed "
                  "timesteps and noise (fp32, eval mode) after the same number of steps (warm-up + timed) from the "
                  "same seed: it shows that the faster loop trains the same, not a quality result."),
                 ("- The plain loop is timed end to end like ours (`harness.measure_training`): its DataLoader, "
                  "`.item()` per step and Accelerate's wrappers count, as the TensorLoader and trainer work count "
                  "in ours. Data: tensors already transformed (the example's PIL transforms would slow it "
                  "further).")]
        json_path, md_path = write_results("diffusion-ddpm", rows, info, config, **out)
        _append(md_path, {"Targets": lines, "Notes": notes})
        written.append((json_path, md_path))
    if "lora" in args.parts:
        batches = args.lora_batch or ([1] if args.smoke else [1, 4])
        lw = args.train_warmup or (1 if args.smoke else 3)
        ls = args.train_steps or (1 if args.smoke else 10)
        rows = lora_section(parts, tokenizer, device, batches, (False, True), args.lora_rank, lw, ls, args.seed)
        config = {"model": f"SD 1.5 UNet ({size}) frozen + LoRA rank {args.lora_rank} on to_q/to_k/to_v/to_out.0",
                  "latents": f"{parts['unet'].config.sample_size} px (512 px images / 8), precomputed, random",
                  "text": "frozen CLIP text encoder run in the step, caption dropout 0.1", "warmup": lw,
                  "timed_steps": ls, "optimizer": "AdamW lr 1e-4 on the LoRA weights (fp32), clip 1.0"}
        json_path, md_path = write_results("diffusion-lora", rows, info, config, **out)
        _append(md_path, {"Targets": [f"- Issue: {TARGETS['lora']}."] + lora_targets(rows),
                          "Notes": [("- Peak memory includes the frozen UNet and text encoder (weights in "
                                     "bf16/fp16) and the LoRA optimizer state; the VAE is not loaded (latents are "
                                     "precomputed, as the course's LoRA chapter does).")]})
        written.append((json_path, md_path))
    for json_path, md_path in written:
        print(md_path.read_text())
        print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
