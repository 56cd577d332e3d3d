"""Training a language model: the shifted causal-LM loss, the trainer step, AdamW groups, the schedule, perplexity.

One :class:`LMStep` trains our :class:`~aigc_lib.lm.model.GPT` and Hugging Face models alike (chapters 04-06).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.lm.model import GPT, IGNORE_INDEX, is_hf_model, unwrap_model

__all__ = ["LMStep", "causal_lm_loss", "count_targets", "lm_eval_fn", "lm_logits", "lm_loss", "lm_optimizer",
           "perplexity", "training_memory", "warmup_cosine"]


def causal_lm_loss(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of predicting token t+1 from positions <= t: shift by one, skip labels of -100.

    ``logits`` (B, T, V) and ``labels`` (B, T) are aligned with the inputs (labels = input ids, with -100 on
    padding and prompts); the shift happens here, as in Hugging Face's models.
    """
    shift_logits = logits[:, :-1].flatten(0, 1)  # predictions made at positions 0..T-2
    shift_labels = labels[:, 1:].flatten()  # the tokens at positions 1..T-1
    # under autocast, cross_entropy runs in float32 by itself (no explicit .float() copy of the logits needed)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction=reduction)


def _split_batch(batch: Any) -> tuple[Tensor, Tensor | None, Tensor]:
    """(inputs, attention_mask, labels) of a collated dict; labels are aligned with the inputs."""
    if isinstance(batch, Mapping):
        ids = batch["input_ids"]
        return ids, batch.get("attention_mask"), batch.get("labels", ids)
    raise TypeError(f"a language-model batch is a tensor of packed rows or a dict with input_ids, got {type(batch)}.")


def lm_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """Next-token logits (B, T, V) from a Hugging Face causal LM, our GPT, or any module mapping ids to logits."""
    if is_hf_model(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    return model(input_ids)


def lm_loss(model: nn.Module, batch: Any, reduction: str = "mean") -> Tensor:
    """The causal-LM loss of a batch: packed rows (B, T+1) from :func:`pack_blocks` (inputs are the first T
    tokens, targets the last T: the shift is done on the data, as nanoGPT does), or a collated dict whose
    labels are aligned with ``input_ids`` (shifted in :func:`causal_lm_loss`; -100 labels skipped)."""
    if isinstance(batch, Tensor):
        inputs, targets = batch[:, :-1], batch[:, 1:]
        if isinstance(unwrap_model(model), GPT):  # our GPT computes the loss in forward, inside torch.compile's graph
            return model(inputs, targets=targets, reduction=reduction)
        return F.cross_entropy(lm_logits(model, inputs).flatten(0, 1), targets.flatten(), reduction=reduction)
    ids, mask, labels = _split_batch(batch)
    return causal_lm_loss(lm_logits(model, ids, mask), labels, reduction)


def count_targets(batch: Any) -> int:
    """How many tokens a batch's loss scores (the denominator of a token-weighted mean)."""
    if isinstance(batch, Tensor):
        return batch[:, 1:].numel()
    return int((_split_batch(batch)[2][:, 1:] != IGNORE_INDEX).sum())


@dataclass
class LMStep:
    """One language-model training step for :class:`aigc_lib.train.Trainer` (single model and optimizer)."""

    def __call__(self, trainer: Any, batch: Any) -> dict[str, Tensor]:
        loss = lm_loss(trainer.model, batch)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach()}


def lm_optimizer(model: nn.Module, lr: float = 3e-4, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.95), fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear and embedding weights) only, not on biases or LayerNorms.

    Frozen parameters (e.g. outside a LoRA adapter) are left out. ``fused`` defaults to on (one kernel per
    step; CPU and CUDA since torch 2.4).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False).")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = True if fused is None else fused
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, fused=fused)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int,
                  min_lr_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the base rate over ``warmup_steps``, then a cosine decay to ``min_lr_ratio``."""
    if not 0 <= warmup_steps < max_steps:
        raise ValueError(f"need 0 <= warmup_steps < max_steps, got {warmup_steps} and {max_steps}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def perplexity(model: nn.Module, batches: Iterable[Any], device: str | torch.device | None = None,
               max_batches: int | None = None) -> dict[str, float]:
    """Token-weighted mean loss and perplexity exp(loss) over batches (every token counted once)."""
    model_was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    total, tokens = 0.0, 0
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = batch.to(device) if isinstance(batch, Tensor) else {k: v.to(device) for k, v in batch.items()}
            total += lm_loss(model, batch, reduction="sum").item()
            tokens += count_targets(batch)
    finally:
        model.train(model_was_training)
    if tokens == 0:
        raise ValueError("perplexity got no tokens to score (empty data, or every label is -100).")
    loss = total / tokens
    return {"loss": loss, "ppl": math.exp(loss), "tokens": tokens}


def lm_eval_fn(batches: Iterable[Any], prefix: str = "val",
               max_batches: int | None = None) -> Callable[[Any], dict[str, float]]:
    """An ``eval_fn`` for the trainer: ``{prefix}_loss`` and ``{prefix}_ppl`` over ``batches``."""

    def evaluate(trainer: Any) -> dict[str, float]:
        result = perplexity(trainer.model, batches, trainer.device, max_batches)
        return {f"{prefix}_loss": result["loss"], f"{prefix}_ppl": result["ppl"]}

    return evaluate


def training_memory(model: nn.Module, optimizer_states: int = 2) -> dict[str, float]:
    """MiB that training keeps per parameter: weights (all), gradients and Adam's two moments (trainable only).

    Activations come on top and depend on batch and sequence length; on a GPU, measure the real peak with
    ``torch.cuda.max_memory_allocated``. Counted once per tensor, so tied weights count once.
    """
    params = {id(p): p for p in model.parameters()}.values()
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    mib = 2**20
    return {"weights_mib": weights / mib, "grads_mib": trainable / mib,
            "optimizer_mib": optimizer_states * trainable / mib,
            "total_mib": (weights + (1 + optimizer_states) * trainable) / mib}
