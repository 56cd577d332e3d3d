"""The GPT-2 model of chapter 04, line by line comparable with nanoGPT's ``model.py``, and its Hugging Face twin.

The model follows GPT-2 exactly (learned positions, pre-LayerNorm blocks, tanh-GELU MLP, tied input and
output embeddings) and is written so that each line can be read against notebook 04. Two differences
from Hugging Face's ``GPT2LMHeadModel`` make it faster, not different: Q, K and V come from one fused
``nn.Linear`` and attention runs in ``F.scaled_dot_product_attention`` (flash attention on a GPU). The
state-dict conversion in :func:`gpt_from_hf` / :meth:`GPT.to_hf` moves weights both ways, so the same
model trains here and loads in ``transformers`` (and ``from_pretrained("gpt2")`` weights load here).

For generation, ``forward`` takes an optional :class:`KVCache` (notebook 04, "KV cache"): the keys and values
of the tokens already seen are kept, so each new token costs one position of work, not the whole context.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GPT", "GPT_SIZES", "IGNORE_INDEX", "MLP", "Block", "CausalSelfAttention", "GPTConfig", "KVCache",
           "describe_lm", "gpt_from_hf", "hf_config", "is_hf_model", "unwrap_model"]

IGNORE_INDEX = -100  # label value that F.cross_entropy (and Hugging Face) leave out of the loss


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2's hyper-parameters, with GPT-2 small's values as defaults (124M parameters)."""

    vocab_size: int = 50257
    block_size: int = 1024  # longest context (number of learned positions)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # GPT-2 used 0.1 in pretraining; 0 is the usual choice for fine-tuning and speed
    bias: bool = True
    layer_norm_epsilon: float = 1e-5
    vocab_multiple: int = 1  # pad the embedding rows to a multiple (64: 50257 -> 50304, faster matmuls)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "vocab_multiple"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}.")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                             "(each head gets n_embd / n_head dimensions).")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / self.vocab_multiple) * self.vocab_multiple

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> GPTConfig:
        """A named size: the four GPT-2 checkpoints, or the course's small offline ones."""
        if name not in GPT_SIZES:
            raise ValueError(f"unknown GPT size {name!r}: choose one of {', '.join(GPT_SIZES)}, or build "
                             "GPTConfig(n_layer=..., n_head=..., n_embd=...) yourself.")
        return cls(**{**GPT_SIZES[name], **overrides})


GPT_SIZES: dict[str, dict[str, int]] = {
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768},  # 124M
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},  # 350M
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280},  # 774M
    "gpt2-xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600},  # 1558M
    "tiny": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128},  # chapter 04 on a CPU
}


class KVCache:
    """The keys and values (B, n_head, T_past, head_dim) of every layer, for the tokens seen (notebook 04).

    Like Hugging Face's ``DynamicCache``: each attention layer calls ``update(k, v, layer_idx)`` with the keys
    and values of its new positions and attends over what it gets back (past + new). Keys and values depend
    only on their own token and position, never on later tokens (the causal mask), so they are computed once.
    """

    def __init__(self) -> None:
        self.keys: list[Tensor] = []  # one (B, nh, T_past, hs) tensor per layer
        self.values: list[Tensor] = []

    def __len__(self) -> int:
        """The number of positions cached (0 before the first forward)."""
        return self.keys[0].size(2) if self.keys else 0

    def update(self, k: Tensor, v: Tensor, layer_idx: int) -> tuple[Tensor, Tensor]:
        """Append this layer's new keys and values (B, nh, T_new, hs); return all of them (B, nh, T, hs)."""
        if layer_idx == len(self.keys):  # the first forward of this layer
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], k], dim=2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], v], dim=2)
        return self.keys[layer_idx], self.values[layer_idx]

    def reset(self) -> None:
        """Forget every cached position (the context window slid: all positions changed)."""
        self.keys, self.values = [], []

    def reorder(self, index: Tensor) -> None:
        """Keep the rows ``index`` (B_new,) of the batch, in that order (beam search reorders its beams)."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection (notebook 04 derives it)."""

    def __init__(self, cfg: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx  # which slot of a KVCache this layer reads and writes
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # x -> [q | k | v]
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # heads -> model width
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B,h,T,d)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)  # (B, nh, T, hs) each, for the T new positions
        mask, causal = None, True
        if kv_cache is not None:
            past = kv_cache.keys[self.layer_idx].size(2) if self.layer_idx < len(kv_cache.keys) else 0
            k, v = kv_cache.update(k, v, self.layer_idx)  # (B, nh, past + T, hs)
            if past:  # new query i sits at position past + i and may read keys 0..past + i
                causal = False
                if T > 1:
                    mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        # softmax(QK^T/sqrt(d) + M) V
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # concatenate the heads
        return self.resid_dropout(self.c_proj(y))

    @torch.no_grad()
    def attention_weights(self, x: Tensor) -> Tensor:
        """The softmax weights (B, n_head, T, T) that forward uses, computed explicitly for plotting."""
        q, k, _ = self._heads(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        T = x.size(1)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


class MLP(nn.Module):
    """The feed-forward half of a block: n_embd -> 4 n_embd -> tanh-GELU -> n_embd (notebook 04)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer_idx)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2: token + position embeddings, ``n_layer`` blocks, a final LayerNorm and the tied output head.

    ``forward(input_ids)`` returns logits (B, T, vocab_size) for the next token at every position.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(cfg.padded_vocab_size, cfg.n_embd),  # token embeddings
            "wpe": nn.Embedding(cfg.block_size, cfg.n_embd),  # learned position embeddings
            "drop": nn.Dropout(cfg.dropout),
            "h": nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer)),
            "ln_f": nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias),
        })
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, targets: Tensor | None = None,
                reduction: str = "mean", kv_cache: KVCache | None = None) -> Tensor:
        """Logits (B, T, vocab_size); with ``targets`` (B, T), the cross-entropy against them instead.

        Computing the loss inside ``forward`` (as nanoGPT does) lets ``torch.compile`` fuse the head, the
        log-softmax and the loss, so the (B, T, V) logits never take an extra float32 copy. ``targets`` are the
        next tokens (already shifted); -100 is skipped. ``attention_mask`` is accepted for right-padded batches
        and not needed: causal attention already keeps real tokens from seeing the padding after them (padding
        must be on the right, as :class:`CausalLMCollator` makes it; its labels are -100).

        With a ``kv_cache``, ``input_ids`` are the tokens after the cached ones (positions len(cache) ...):
        their keys and values are appended to the cache and the logits are those of the new positions only."""
        T = input_ids.size(1)
        past = len(kv_cache) if kv_cache is not None else 0
        if past + T > self.config.block_size:
            cached = f"{past} cached + {T} new = {past + T} tokens" if past else f"sequence of {T} tokens"
            raise ValueError(f"{cached} is longer than the model's block_size {self.config.block_size} (its "
                             "learned positions): truncate it, or crop the context and start a new cache "
                             "(generate does both).")
        pos = torch.arange(past, past + T, device=input_ids.device)  # (T,) positions of the new tokens
        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, kv_cache)
        logits = self.lm_head(self.transformer.ln_f(x))
        if self.config.padded_vocab_size != self.config.vocab_size:
            logits = logits[..., : self.config.vocab_size]  # padding rows are never real tokens
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction=reduction)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameters counted once (the tied head is the embedding); ``non_embedding`` drops both embeddings,
        the count that scaling laws and the 6N FLOP estimate use."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def to_hf(self) -> Any:
        """This model as a ``transformers.GPT2LMHeadModel`` with the same weights (for save_pretrained)."""
        from transformers import GPT2LMHeadModel

        hf = GPT2LMHeadModel(hf_config(self.config))
        hf.load_state_dict(_to_hf_state_dict(self.state_dict(), self.config), strict=False)
        hf.tie_weights()
        return hf.to(next(self.parameters()).device).eval()

    def save_pretrained(self, folder: str | os.PathLike, tokenizer: Any = None) -> Path:
        """Save in Hugging Face format (config.json + model.safetensors), loadable by ``from_pretrained``.

        With a ``tokenizer``, it is saved alongside and its end-of-text id becomes the model's BOS/EOS/pad id,
        so plain ``model.generate`` and pipelines stop where :func:`complete` does."""
        folder = Path(folder)
        hf = self.to_hf()
        if tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
            eos = tokenizer.eos_token_id
            hf.config.bos_token_id = hf.config.eos_token_id = hf.config.pad_token_id = eos
            hf.generation_config.bos_token_id = hf.generation_config.eos_token_id = eos
            hf.generation_config.pad_token_id = eos
        hf.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return folder


def hf_config(cfg: GPTConfig) -> Any:
    """The ``transformers.GPT2Config`` of a :class:`GPTConfig`."""
    from transformers import GPT2Config

    return GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                      n_layer=cfg.n_layer, n_head=cfg.n_head, activation_function="gelu_new",
                      resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                      layer_norm_epsilon=cfg.layer_norm_epsilon, bos_token_id=cfg.vocab_size - 1,
                      eos_token_id=cfg.vocab_size - 1, tie_word_embeddings=True)


_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _to_hf_state_dict(state: Mapping[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        if key.endswith(_CONV1D):
            value = value.t()  # HF's Conv1D stores (in, out); nn.Linear stores (out, in)
        if key in ("transformer.wte.weight", "lm_head.weight"):
            value = value[: cfg.vocab_size]
        out[key] = value.contiguous()
    return out


def gpt_from_hf(hf_model: Any, **overrides: Any) -> GPT:
    """Our :class:`GPT` with the weights of a ``GPT2LMHeadModel`` (a model object, a hub id or a folder)."""
    if isinstance(hf_model, (str, os.PathLike)):
        from transformers import GPT2LMHeadModel

        hf_model = GPT2LMHeadModel.from_pretrained(hf_model)
    c = hf_model.config
    if getattr(c, "model_type", None) != "gpt2":
        raise ValueError(f"gpt_from_hf converts GPT-2 checkpoints; this one is {getattr(c, 'model_type', '?')!r}.")
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"activation {c.activation_function!r} differs from GPT-2's tanh GELU: not convertible.")
    cfg = GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer, n_head=c.n_head,
                    n_embd=c.n_embd, layer_norm_epsilon=c.layer_norm_epsilon, **overrides)
    model = GPT(cfg)
    state = model.state_dict()
    for key, value in hf_model.state_dict().items():
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # old transformers versions kept the causal mask as a buffer
        if key not in state:
            raise KeyError(f"unexpected weight {key!r} in the Hugging Face checkpoint.")
        value = value.t() if key.endswith(_CONV1D) else value
        with torch.no_grad():
            state[key][: value.shape[0]].copy_(value)  # embedding rows beyond vocab_size stay as initialised
    return model.to(next(hf_model.parameters()).device)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile`` / DDP wrappers (notebook 05 compiles and wraps models)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None or not isinstance(inner, nn.Module):
            return model
        model = inner


def is_hf_model(model: nn.Module) -> bool:
    """True for Hugging Face (and peft-wrapped) models, which take keyword inputs and return ``.logits``."""
    return hasattr(unwrap_model(model), "generate")


def describe_lm(model: nn.Module) -> str:
    """One line: architecture, size and where the parameters are."""
    raw = unwrap_model(model)
    total = sum(p.numel() for p in raw.parameters())
    trainable = sum(p.numel() for p in raw.parameters() if p.requires_grad)
    c = raw.config
    shape = f"{c.n_layer} layers x {c.n_head} heads x {c.n_embd} wide, context {getattr(c, 'block_size', None) or c.n_positions}"
    return (f"{type(raw).__name__}: {shape}, vocabulary {c.vocab_size:,}; {total / 1e6:.2f}M parameters "
            f"({trainable / total:.1%} trainable)")
