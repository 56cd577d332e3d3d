"""Deploying a language model (notebook 14): int8 weights, size, latency, quality, cost, and reading logs back.

Dynamic int8 quantisation stores every ``nn.Linear`` weight as int8 with one float scale per tensor and
quantises the activations on the fly at each call: no calibration data, no retraining. Its price is quality, so
:func:`quantization_table` measures all three sides on the learner's own machine: serialised size
(:func:`model_size_mb`), greedy decoding latency per token (:func:`latency_ms`, median of timed repeats after a
warm-up) and perplexity on held-out texts (:func:`perplexity_on`). :func:`cost_per_1000_requests` turns a
latency into money with a price the caller states. :func:`read_scalars` reads the TensorBoard event files the
shared trainer writes (``TrainConfig(trackers=("tensorboard",))``) back into Python, e.g. to plot or test them.

GPT-2 in ``transformers`` computes its projections with ``Conv1D`` modules (a linear layer whose weight is stored
(in, out)), which ``quantize_dynamic`` does not recognise: :func:`conv1d_to_linear` rewrites them as
``nn.Linear`` first, with identical outputs.
"""
from __future__ import annotations

import copy
import io
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import torch
from torch import Tensor, nn

from aigc_lib.lm.decoding import generate
from aigc_lib.lm.model import is_hf_model, unwrap_model
from aigc_lib.lm.training import perplexity

__all__ = ["QuantRow", "conv1d_to_linear", "cost_per_1000_requests", "latency_ms", "model_size_mb",
           "perplexity_on", "quantization_table", "quantize_dynamic_int8", "read_scalars"]


# ----------------------------------------------------------------------------------------------- int8 weights
def _is_conv1d(module: nn.Module) -> bool:
    """A ``transformers`` Conv1D (GPT-2's projections): weight (in, out), bias (out,), ``nf`` output features."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every GPT-2 ``Conv1D`` replaced by the equal ``nn.Linear`` (notebook 14).

    Conv1D computes ``y = x @ W + b`` with ``W`` of shape (in, out); ``nn.Linear`` computes ``y = x @ W'.T + b``
    with ``W'`` of shape (out, in), so ``W' = W.T``. The original model is left untouched.
    """
    model = copy.deepcopy(model)
    swaps = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if _is_conv1d(child)]
    for parent, name, conv in swaps:
        n_in, n_out = conv.weight.shape  # (in, out)
        linear = nn.Linear(n_in, n_out, bias=conv.bias is not None, device=conv.weight.device,
                           dtype=conv.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.t())  # (out, in)
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        setattr(parent, name, linear)
    return model


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` whose ``nn.Linear`` layers (GPT-2's Conv1D included) hold int8 weights (notebook 14).

    Uses ``torch.ao.quantization.quantize_dynamic`` (per-tensor int8 weights, activations quantised on the fly).
    That API is deprecated in recent PyTorch (it warns that it moves to the separate ``torchao`` package's
    ``quantize_``) but still runs in the installed torch; the course adds no dependency for it, so its two
    deprecation warnings are silenced here. The int8 kernels (fbgemm/x86, qnnpack) are CPU-only: the copy is moved
    to the CPU. Embeddings and LayerNorms stay float32; a head tied to the embedding becomes an int8 copy.
    """
    from torch.ao.quantization import quantize_dynamic

    raw = conv1d_to_linear(unwrap_model(model)).to("cpu").eval()
    if not any(isinstance(m, nn.Linear) for m in raw.modules()):
        raise ValueError(f"{type(raw).__name__} has no nn.Linear (or GPT-2 Conv1D) layer to quantise.")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        return quantize_dynamic(raw, {nn.Linear}, dtype=torch.qint8, inplace=True)


def model_size_mb(model: nn.Module) -> float:
    """Bytes of ``torch.save(model.state_dict())`` in MB (10^6 bytes): what a checkpoint takes on disk (notebook 14).

    Tensors that share storage (a tied head) are written once, as ``torch.save`` does.
    """
    buffer = io.BytesIO()
    torch.save(unwrap_model(model).state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


# ----------------------------------------------------------------------------------------------- speed and quality
def _prompt_ids(prompt: str | Tensor | Sequence[int], tokenizer: Any) -> Tensor:
    """(1, T) token ids of a prompt given as text (with its tokenizer) or ids."""
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("latency_ms got a text prompt but no tokenizer: pass tokenizer=..., or token ids.")
        prompt = tokenizer(prompt, return_tensors="pt")["input_ids"]
    ids = torch.as_tensor(prompt, dtype=torch.long)
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise ValueError(f"the prompt must be one non-empty sequence of ids, (T,) or (1, T); got {tuple(ids.shape)}.")
    return ids


@torch.no_grad()
def _decode(model: nn.Module, ids: Tensor, n_tokens: int) -> int:
    """Greedy-decode exactly ``n_tokens`` new tokens (no early stop at end-of-text); returns how many came out."""
    raw = unwrap_model(model)
    if is_hf_model(raw):
        eos = raw.config.eos_token_id
        out = raw.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n_tokens,
                           min_new_tokens=n_tokens, pad_token_id=eos if eos is not None else 0)
    else:
        out = generate(raw, ids, n_tokens)  # our GPT: greedy with a KV cache, no end-of-text stop
    return out.shape[1] - ids.shape[1]


def latency_ms(model: nn.Module, prompt: str | Tensor | Sequence[int], n_tokens: int = 32, repeats: int = 5, *,
               tokenizer: Any = None, warmup: int = 1) -> float:
    """Median milliseconds per generated token of greedy decoding, after ``warmup`` untimed runs (notebook 14).

    One request at a time (batch 1), on the model's device, in the current thread count: the numbers belong to
    this machine and its load, so compare models only when measured side by side.
    """
    if n_tokens < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need n_tokens >= 1, repeats >= 1, warmup >= 0; got {n_tokens}, {repeats}, {warmup}.")
    raw = unwrap_model(model)
    device = next(raw.parameters()).device
    ids = _prompt_ids(prompt, tokenizer).to(device)
    was_training = raw.training
    raw.eval()
    try:
        for _ in range(warmup):
            _decode(raw, ids, n_tokens)
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = perf_counter()
            made = _decode(raw, ids, n_tokens)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append((perf_counter() - start) * 1000 / made)
    finally:
        raw.train(was_training)
    return statistics.median(times)


def perplexity_on(model: nn.Module, texts: Sequence[str], tokenizer: Any, max_length: int | None = None) -> float:
    """Token-weighted perplexity exp(mean loss) of ``model`` over ``texts``, each scored on its own (notebook 14).

    Each text is cut to ``max_length`` tokens (default: the model's context length); texts of under two tokens
    score nothing. Use texts the model did not train on.
    """
    if isinstance(texts, str) or not texts:
        raise ValueError("perplexity_on needs a non-empty list of texts (not a single string).")
    raw = unwrap_model(model)
    if max_length is None:
        config = getattr(raw, "config", None)
        max_length = getattr(config, "n_positions", None) or getattr(config, "block_size", None) or 1024
    batches = []
    for text in texts:
        ids = torch.as_tensor(tokenizer(text)["input_ids"][:max_length], dtype=torch.long)[None]  # (1, T)
        if ids.shape[1] >= 2:
            batches.append({"input_ids": ids})  # labels = input ids, shifted inside the loss
    if not batches:
        raise ValueError("every text is shorter than two tokens: nothing to score.")
    return perplexity(raw, batches)["ppl"]


@dataclass(frozen=True)
class QuantRow:
    """One row of :func:`quantization_table`: a model variant's size, speed and quality on this machine."""

    name: str
    size_mb: float  # serialised state_dict, 10^6 bytes
    ms_per_token: float  # median greedy decoding latency, batch 1
    perplexity: float  # on the texts given to the table


def quantization_table(models: Mapping[str, nn.Module], texts: Sequence[str], tokenizer: Any,
                       prompt: str | Tensor | Sequence[int] | None = None, n_tokens: int = 32, repeats: int = 5,
                       warmup: int = 1) -> list[QuantRow]:
    """Size, latency and perplexity of each model, e.g. ``{"fp32": model, "int8": quantize_dynamic_int8(model)}``
    (notebook 14). The prompt defaults to the first text; every model sees the same prompt and texts."""
    if not models:
        raise ValueError("quantization_table needs at least one model, e.g. {'fp32': model}.")
    prompt = texts[0] if prompt is None else prompt
    return [QuantRow(name, model_size_mb(model),
                     latency_ms(model, prompt, n_tokens, repeats, tokenizer=tokenizer, warmup=warmup),
                     perplexity_on(model, texts, tokenizer))
            for name, model in models.items()]


def cost_per_1000_requests(latency_s: float, tokens_per_request: int, price_per_hour: float) -> float:
    """Device-time cost of 1000 requests, one at a time, in the currency of ``price_per_hour`` (notebook 14).

    ``cost = 1000 * latency_s * tokens_per_request / 3600 * price_per_hour`` with ``latency_s`` the seconds per
    generated token measured on the device you price (:func:`latency_ms` / 1000) and ``price_per_hour`` what
    that device costs you per hour: look it up for your own machine or cloud instance; there is no default.
    Batching several requests, idle time and prompt processing are not counted.
    """
    for name, value in (("latency_s", latency_s), ("tokens_per_request", tokens_per_request),
                        ("price_per_hour", price_per_hour)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    seconds = 1000 * latency_s * tokens_per_request  # device time for 1000 requests
    return seconds / 3600 * price_per_hour


# ----------------------------------------------------------------------------------------------- experiment logs
def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``log_dir`` (searched recursively): tag -> [(step, value)]
    sorted by step (notebook 14). Values come back as TensorBoard stored them: float32."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = Path(log_dir)
    runs = sorted({p.parent for p in root.rglob("events.out.tfevents.*")}) if root.is_dir() else []
    if not runs:
        raise FileNotFoundError(f"no TensorBoard event files under {root}: train with "
                                "TrainConfig(trackers=('tensorboard',), project_dir=...) and pass that project_dir.")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for run in runs:
        events = EventAccumulator(str(run), size_guidance={"scalars": 0})  # 0: keep every point, not a sample
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return {tag: sorted(points) for tag, points in scalars.items()}
