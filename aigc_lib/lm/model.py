"""Language models for chapters 04-06: a readable GPT-2, tokenizers, causal-LM data, training, decoding, metrics.

The model follows GPT-2 exactly (learned positions, pre-LayerNorm blocks, tanh-GELU MLP, tied input and
output embeddings) and is written so that each line can be read against notebook 04. Two differences
from Hugging Face's ``GPT2LMHeadModel`` make it faster, not different: Q, K and V come from one fused
``nn.Linear`` and attention runs in ``F.scaled_dot_product_attention`` (flash attention on a GPU). The
state-dict conversion in :func:`gpt_from_hf` / :meth:`GPT.to_hf` moves weights both ways, so the same
model trains here and loads in ``transformers`` (and ``from_pretrained("gpt2")`` weights load here).

The pieces every chapter needs live here too: a character tokenizer (04), byte-level BPE trained offline
and saved as a ``transformers`` tokenizer (05), packing and a padding/prompt-masking collator, the shifted
causal-LM loss, a step function for :class:`aigc_lib.train.Trainer` that trains our model and Hugging Face
models alike, decoding (greedy, beam, temperature, top-k, top-p, repetition penalty), perplexity, BLEU,
ROUGE and distinct-n, and :func:`build_offline_base`, the small GPT-2 "pretrained" offline on the standard
library's docstrings that stands in for ``gpt2`` where the hub cannot be reached.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100  # label value that F.cross_entropy (and Hugging Face) leave out of the loss
EOS = "<|endoftext|>"  # GPT-2's one special token: end of text, also used as padding


# =============================================================================================== model
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


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection (notebook 04 derives it)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # x -> [q | k | v]
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # heads -> model width
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B,h,T,d)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,  # softmax(QK^T/sqrt(d) + mask) V
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

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
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
            "h": nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
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
                reduction: str = "mean") -> Tensor:
        """Logits (B, T, vocab_size); with ``targets`` (B, T), the cross-entropy against them instead.

        Computing the loss inside ``forward`` (as nanoGPT does) lets ``torch.compile`` fuse the head, the
        log-softmax and the loss, so the (B, T, V) logits never take an extra float32 copy. ``targets`` are the
        next tokens (already shifted); -100 is skipped. ``attention_mask`` is accepted for right-padded batches
        and not needed: causal attention already keeps real tokens from seeing the padding after them (padding
        must be on the right, as :class:`CausalLMCollator` makes it; its labels are -100)."""
        T = input_ids.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the model's block_size "
                             f"{self.config.block_size}: truncate it or crop the context (generate does).")
        pos = torch.arange(T, device=input_ids.device)
        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
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


# =========================================================================================== tokenizers
class CharTokenizer:
    """One token per character (chapter 04): the vocabulary is the sorted set of characters in a text."""

    def __init__(self, text_or_chars: str | Iterable[str]) -> None:
        chars = sorted(set(text_or_chars))
        if not chars:
            raise ValueError("CharTokenizer needs a non-empty text to build its vocabulary from.")
        self.itos = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters {unknown[:10]} are not in this tokenizer's vocabulary of "
                             f"{self.vocab_size}: build it from a text that contains them.")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps({"chars": "".join(self.itos)}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["chars"])


def train_bpe_tokenizer(texts: str | Iterable[str], vocab_size: int = 8192, *, min_frequency: int = 2,
                        save_dir: str | os.PathLike | None = None) -> Any:
    """Byte-level BPE like GPT-2's (any UTF-8 text encodes, nothing is unknown), trained with ``tokenizers``
    and wrapped as a ``transformers`` fast tokenizer; ``EOS`` ends documents and pads batches."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [texts] if isinstance(texts, str) else list(texts)
    if not any(t.strip() for t in texts):
        raise ValueError("train_bpe_tokenizer got no text: pass a non-empty corpus (a string or a list).")
    if vocab_size < 257:
        raise ValueError(f"vocab_size={vocab_size} is below 256 bytes + 1 special token.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex split + byte map
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                   pad_token=EOS)
    if save_dir is not None:
        fast.save_pretrained(save_dir)
    return fast


def load_tokenizer(hub_id: str | None = "gpt2", local_dir: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """``AutoTokenizer`` from the hub when online, else a local folder; pads with EOS when it has no pad token."""
    from transformers import AutoTokenizer

    from aigc_lib.hub import load_pretrained

    tokenizer = load_pretrained(AutoTokenizer, hub_id, local_dir, **kwargs)
    if tokenizer.pad_token is None:  # GPT-2 has none; padded positions are masked from the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# ================================================================================================ data
def pack_blocks(ids: Sequence[int] | Tensor, block_size: int, stride: int | None = None) -> Tensor:
    """Cut one long token stream into rows of ``block_size + 1`` tokens (inputs plus the last target).

    ``stride`` (default ``block_size``) is the step between row starts; a smaller stride overlaps rows, which
    gives a small corpus more (correlated) training windows. The tail that does not fill a row is dropped.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    stride = stride or block_size
    if block_size < 1 or stride < 1:
        raise ValueError(f"block_size and stride must be positive, got {block_size}, {stride}.")
    if len(ids) < block_size + 1:
        raise ValueError(f"the token stream has {len(ids)} tokens, fewer than one block of {block_size + 1}: "
                         "use a longer corpus or a smaller block_size.")
    return ids.unfold(0, block_size + 1, stride).contiguous()  # (N, block_size + 1)


def encode_corpus(tokenizer: Any, documents: str | Sequence[str], add_eos: bool = True) -> list[int]:
    """Token ids of documents joined by EOS (GPT-2's separator), ready for :func:`pack_blocks`."""
    documents = [documents] if isinstance(documents, str) else list(documents)
    eos = getattr(tokenizer, "eos_token_id", None)
    ids: list[int] = []
    for doc in documents:
        ids.extend(tokenizer.encode(doc))
        if add_eos and eos is not None:
            ids.append(eos)
    return ids


QA_TEMPLATE = "Question: {question}\nAnswer:"  # the prompt; the model learns to continue it with " {answer}<eos>"


def encode_qa(tokenizer: Any, pairs: Sequence[Mapping[str, str]], *, template: str = QA_TEMPLATE,
              max_length: int = 256, mask_prompt: bool = True) -> list[dict[str, list[int]]]:
    """Tokenise question-answer pairs as ``prompt + " " + answer + EOS``; labels are -100 on the prompt when
    ``mask_prompt`` (the model is graded on answers only, as in instruction tuning).

    A pair's optional ``"context"`` (e.g. few-shot examples, notebook 06) is put before the prompt and masked
    with it. Rows longer than ``max_length`` lose their end: keep contexts short enough (a ValueError says so
    when nothing of an answer would remain)."""
    eos = tokenizer.eos_token_id
    out = []
    for pair in pairs:
        prompt = tokenizer.encode(pair.get("context", "") + template.format(**pair))
        if len(prompt) >= max_length:
            raise ValueError(f"the prompt of {pair.get('question', pair)!r} has {len(prompt)} tokens, no room for "
                             f"its answer within max_length={max_length}: shorten the context or raise max_length.")
        answer = tokenizer.encode(" " + pair["answer"].strip()) + [eos]
        ids = (prompt + answer)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt) if mask_prompt else prompt) + answer
        out.append({"input_ids": ids, "labels": labels[:max_length]})
    if not out:
        raise ValueError("encode_qa got no pairs: pass a non-empty list of {'question', 'answer'} dicts.")
    return out


@dataclass
class CausalLMCollator:
    """Right-pads a list of ``{"input_ids", "labels"}`` into tensors; padded labels are -100, the mask is 0."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, Tensor]:
        length = max(len(e["input_ids"]) for e in examples)
        if self.pad_to_multiple_of:
            length = math.ceil(length / self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, :n] = torch.as_tensor(e["input_ids"])
            labels[row, :n] = torch.as_tensor(e.get("labels", e["input_ids"]))
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def qa_batches(tokenizer: Any, pairs: Sequence[Mapping[str, str]], batch_size: int = 16, *,
               max_length: int = 256, **encode: Any) -> list[dict[str, Tensor]]:
    """Evaluation batches of Q&A pairs, in order: :func:`encode_qa` then :class:`CausalLMCollator` in chunks."""
    encoded = encode_qa(tokenizer, pairs, max_length=max_length, **encode)
    collate = CausalLMCollator(tokenizer.pad_token_id)
    return [collate(encoded[i:i + batch_size]) for i in range(0, len(encoded), batch_size)]


# ============================================================================================ training
def causal_lm_loss(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of predicting token t+1 from positions <= t: shift by one, skip labels of -100.

    ``logits`` (B, T, V) and ``labels`` (B, T) are aligned with the inputs (labels = input ids, with -100 on
    padding and prompts); the shift happens here, as in Hugging Face's models.
    """
    shift_logits = logits[:, :-1].flatten(0, 1)  # predictions made at positions 0..T-2
    shift_labels = labels[:, 1:].flatten()  # the tokens at positions 1..T-1
    # under autocast, cross_entropy runs in float32 by itself (no explicit .float() copy of the logits needed)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction=reduction)


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None or not isinstance(inner, nn.Module):
            return model
        model = inner


def is_hf_model(model: nn.Module) -> bool:
    """True for Hugging Face (and peft-wrapped) models, which take keyword inputs and return ``.logits``."""
    return hasattr(_unwrap(model), "generate")


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
        if isinstance(_unwrap(model), GPT):  # our GPT computes the loss in forward, inside torch.compile's graph
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


def lm_eval_fn(batches: Iterable[Any], prefix: str = "val", max_batches: int | None = None):
    """An ``eval_fn`` for the trainer: ``{prefix}_loss`` and ``{prefix}_ppl`` over ``batches``."""

    def evaluate(trainer: Any) -> dict[str, float]:
        result = perplexity(trainer.model, batches, trainer.device, max_batches)
        return {f"{prefix}_loss": result["loss"], f"{prefix}_ppl": result["ppl"]}

    return evaluate


# ============================================================================================ decoding
def apply_repetition_penalty(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty (Keskar et al., 2019), as in transformers: divide positive logits of tokens already in
    ``previous`` by ``penalty`` and multiply negative ones by it."""
    if penalty == 1.0:
        return logits
    score = logits.gather(-1, previous)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(-1, previous, score)


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Temperature, then top-k (keep the k best), then top-p (keep the smallest set with probability >= p)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for 'temperature 0'), got {temperature}.")
    logits = logits / temperature
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # mass before this token already reaches p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


DECODING: dict[str, dict[str, Any]] = {  # the strategies notebook 05 compares side by side
    "greedy": {"do_sample": False},
    "beam (4)": {"num_beams": 4},
    "sampling (T=1.0)": {"do_sample": True, "temperature": 1.0},
    "temperature 0.7": {"do_sample": True, "temperature": 0.7},
    "top-k 40": {"do_sample": True, "top_k": 40},
    "top-p 0.9": {"do_sample": True, "top_p": 0.9},
    "top-p 0.9 + repetition 1.3": {"do_sample": True, "top_p": 0.9, "repetition_penalty": 1.3},
}


@torch.no_grad()
def generate(model: nn.Module, input_ids: Tensor | Sequence[int], max_new_tokens: int = 50, *,
             do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, num_beams: int = 1, num_return_sequences: int = 1,
             eos_token_id: int | None = None, seed: int | None = None) -> Tensor:
    """Continue ``input_ids`` (T,) or (B, T): returns (B * num_return_sequences, T + new) token ids.

    Hugging Face models go through their own ``generate`` (with these same settings); our :class:`GPT` runs the
    plain loop below, which recomputes the whole context at each step (no KV cache: short and readable).
    ``seed`` makes sampling repeatable without touching the global random state.
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    ids = ids[None] if ids.dim() == 1 else ids
    raw = _unwrap(model)
    device = next(raw.parameters()).device
    ids = ids.to(device)
    if num_beams > 1 and do_sample:
        raise ValueError("choose beam search (num_beams > 1) or sampling (do_sample=True), not both.")
    was_training = raw.training
    raw.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if is_hf_model(raw):
                eos = eos_token_id if eos_token_id is not None else raw.config.eos_token_id
                return raw.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                    do_sample=do_sample, temperature=temperature if do_sample else None,
                                    top_k=top_k if do_sample else None, top_p=top_p if do_sample else None,
                                    repetition_penalty=repetition_penalty, num_beams=num_beams,
                                    num_return_sequences=num_return_sequences, eos_token_id=eos,
                                    pad_token_id=eos)
            if num_beams > 1:
                return torch.cat([_beam_search(raw, row, max_new_tokens, num_beams, num_return_sequences,
                                               eos_token_id, repetition_penalty) for row in ids])
            ids = ids.repeat_interleave(num_return_sequences, dim=0)
            return _sample_loop(raw, ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                                repetition_penalty, eos_token_id)
    finally:
        raw.train(was_training)


def _next_logits(model: GPT, ids: Tensor) -> Tensor:
    context = ids[:, -model.config.block_size:]  # crop to the context the model was trained on
    return model(context)[:, -1, :].float()  # (B, V): only the last position predicts the next token


def _sample_loop(model: GPT, ids: Tensor, max_new_tokens: int, do_sample: bool, temperature: float,
                 top_k: int, top_p: float, repetition_penalty: float, eos_token_id: int | None) -> Tensor:
    finished = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = apply_repetition_penalty(_next_logits(model, ids), ids, repetition_penalty)
        if do_sample:
            probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
            token = torch.multinomial(probs, 1)  # (B, 1)
        else:
            token = logits.argmax(-1, keepdim=True)
        if eos_token_id is not None:  # rows that ended keep emitting EOS (padding), as generate does
            token = torch.where(finished[:, None], torch.full_like(token, eos_token_id), token)
            finished |= token[:, 0] == eos_token_id
        ids = torch.cat([ids, token], dim=1)
        if eos_token_id is not None and bool(finished.all()):
            break
    return ids


def _beam_search(model: GPT, prompt: Tensor, max_new_tokens: int, num_beams: int, num_return: int,
                 eos_token_id: int | None, repetition_penalty: float) -> Tensor:
    """Keep the ``num_beams`` most probable continuations (sum of log-probabilities) at every step; a beam that
    emits EOS is finished, scored by its mean log-probability per new token (length_penalty 1, as in HF)."""
    if num_return > num_beams:
        raise ValueError(f"num_return_sequences={num_return} is more than num_beams={num_beams}.")
    beams, scores = prompt[None], torch.zeros(1, device=prompt.device)  # (beams, T), (beams,)
    finished: list[tuple[float, Tensor]] = []
    vocab = None
    for step in range(1, max_new_tokens + 1):
        logits = apply_repetition_penalty(_next_logits(model, beams), beams, repetition_penalty)
        vocab = logits.size(-1)
        total = (scores[:, None] + logits.log_softmax(-1)).flatten()  # every (beam, token) extension
        live, live_scores = [], []
        for rank, index in enumerate(total.topk(min(2 * num_beams, total.numel())).indices.tolist()):
            beam, token = divmod(index, vocab)
            seq = torch.cat([beams[beam], beams.new_tensor([token])])
            if token == eos_token_id:
                if rank < num_beams:  # an EOS that is not among the best num_beams is not kept
                    finished.append((float(total[index]) / step, seq))
            elif len(live) < num_beams:
                live.append(seq)
                live_scores.append(total[index])
        beams, scores = torch.stack(live), torch.stack(live_scores)
        finished.sort(key=lambda item: -item[0])
        # done when num_beams beams have finished and no live beam can still beat the worst of them
        if len(finished) >= num_beams and finished[num_beams - 1][0] >= float(scores[0]) / step:
            break
    new = beams.size(1) - len(prompt)
    candidates = finished + [(float(s) / max(1, new), b) for s, b in zip(scores, beams)]
    candidates.sort(key=lambda item: -item[0])
    chosen = [seq for _, seq in candidates[:num_return]]
    width = max(len(s) for s in chosen)
    pad = eos_token_id if eos_token_id is not None else 0
    return torch.stack([torch.cat([s, s.new_full((width - len(s),), pad)]) for s in chosen])


def complete(model: nn.Module, tokenizer: Any, prompts: str | Sequence[str], max_new_tokens: int = 60, *,
             stop: str | None = None, **decoding: Any) -> list[str]:
    """Text continuations of each prompt (decoded new tokens, cut at EOS and at ``stop``)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    eos = getattr(tokenizer, "eos_token_id", None)
    decoding.setdefault("eos_token_id", eos)
    outputs = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        if not ids:
            raise ValueError("an empty prompt has nothing to continue: give at least one token of text.")
        out = generate(model, ids, max_new_tokens, **decoding)
        for row in out:
            new = row[len(ids):].tolist()
            if eos is not None and eos in new:
                new = new[: new.index(eos)]
            text = tokenizer.decode(new)
            outputs.append(text.split(stop)[0] if stop else text)
    return outputs


# ============================================================================================= metrics
def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over the texts (1 = no repeats)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's standard tokenisation; one reference (or a list) per hypothesis."""
    import sacrebleu

    _check_pairs(hypotheses, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    streams = [list(s) for s in zip(*refs)] if len({len(r) for r in refs}) == 1 else None
    if streams is None:
        raise ValueError("give every hypothesis the same number of references.")
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0-1), averaged over pairs (torchmetrics' implementation)."""
    from torchmetrics.text.rouge import ROUGEScore

    _check_pairs(hypotheses, references)
    scores = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL"))(list(hypotheses), list(references))
    return {key: float(scores[f"{key}_fmeasure"]) for key in ("rouge1", "rouge2", "rougeL")}


def _check_pairs(hypotheses: Sequence[Any], references: Sequence[Any]) -> None:
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"need one reference per hypothesis and at least one pair, got {len(hypotheses)} "
                         f"hypotheses and {len(references)} references.")


# ==================================================================================== offline base model
@dataclass(frozen=True)
class BaseRecipe:
    """How :func:`build_offline_base` pretrains the small GPT-2 that stands in for ``gpt2`` offline."""

    corpus: str = "stdlib-docs"  # the installed Python's docstrings (aigc_lib.data.load_text)
    max_chars: int | None = None
    vocab_size: int = 8192
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 512
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    val_fraction: float = 0.05
    seed: int = 0

    def key(self) -> str:
        """Cache key: the recipe, the code version and the Python (whose docstrings are the default corpus)."""
        what = {**asdict(self), "v": _BASE_VERSION, "python": platform.python_version()}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


_BASE_VERSION = 2  # bump when the code changes what a recipe produces (2: EOS id from the tokenizer)
BASE_RECIPES = {  # measured times: docs/lm.md and notebook 05's intro
    "smoke": BaseRecipe(max_chars=300_000, vocab_size=2048, n_layer=2, n_head=2, n_embd=64, block_size=128,
                        steps=80, batch_size=16, lr=3e-3, warmup_steps=10),
    # quick: 2M tokens, 180 s on a quiet 2-core CPU (the 6.5M-token recipe before it took 19 min on a busy one)
    "quick": BaseRecipe(vocab_size=4096, n_layer=4, n_head=4, n_embd=128, block_size=256, steps=500,
                        batch_size=16, lr=2e-3, warmup_steps=50),
    "full": BaseRecipe(),
}


def build_offline_base(recipe: BaseRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
                       device: str | None = None, force: bool = False, progress: bool = True) -> Path:
    """Pretrain (once, then cached) a small GPT-2 and its BPE tokenizer on an offline corpus; return the folder.

    The folder is a normal ``save_pretrained`` folder: ``AutoModelForCausalLM.from_pretrained(folder)`` and
    ``AutoTokenizer.from_pretrained(folder)`` load it exactly as they load ``"gpt2"`` from the hub.
    """
    from aigc_lib.data import DATA_DIR, TensorLoader, load_text, split_indices
    from aigc_lib.train import TrainConfig, Trainer

    if isinstance(recipe, str):
        if recipe not in BASE_RECIPES:
            raise ValueError(f"unknown base recipe {recipe!r}: choose one of {', '.join(BASE_RECIPES)}.")
        recipe = BASE_RECIPES[recipe]
    if not isinstance(recipe, BaseRecipe):
        raise TypeError(f"recipe must be a name ({', '.join(BASE_RECIPES)}) or a BaseRecipe, got {type(recipe)}.")
    root = Path(cache_dir) if cache_dir else DATA_DIR / "cache" / "lm"
    folder = root / f"base-{recipe.key()}"
    if (folder / "config.json").is_file() and not force:
        print(f"[aigc.lm] offline base model: cached {folder}")
        return folder
    start = time.perf_counter()
    text = load_text(recipe.corpus, max_chars=recipe.max_chars)
    documents = [d for d in text.split("\n\n") if d.strip()]
    tokenizer = train_bpe_tokenizer(documents, recipe.vocab_size)
    blocks = pack_blocks(encode_corpus(tokenizer, documents), recipe.block_size)
    val_idx, train_idx = split_indices(len(blocks), (recipe.val_fraction, 1 - recipe.val_fraction), recipe.seed)
    torch.manual_seed(recipe.seed)
    cfg = GPTConfig(vocab_size=len(tokenizer), block_size=recipe.block_size, n_layer=recipe.n_layer,
                    n_head=recipe.n_head, n_embd=recipe.n_embd)
    model = GPT(cfg)
    optimizer = lm_optimizer(model, recipe.lr, recipe.weight_decay)
    config = TrainConfig(max_steps=recipe.steps, max_grad_norm=1.0, device=device, progress=progress,
                         log_every=max(1, recipe.steps // 20))
    loader = TensorLoader(blocks[train_idx], batch_size=recipe.batch_size, seed=recipe.seed)
    val = blocks[val_idx][:256].split(recipe.batch_size)
    trainer = Trainer(model, optimizer, LMStep(), loader, config, eval_fn=lm_eval_fn(val),
                      schedulers={"model": warmup_cosine(optimizer, recipe.warmup_steps, recipe.steps)})
    print(f"[aigc.lm] pretraining the offline base model ({model.num_parameters() / 1e6:.2f}M parameters, "
          f"{len(blocks) * recipe.block_size:,} tokens of {recipe.corpus}) on {trainer.device}")
    history = trainer.fit()
    tmp = root / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, tokenizer)
    summary = {"recipe": asdict(recipe), "history": history, "seconds": time.perf_counter() - start,
               "device": str(trainer.device), "parameters": model.num_parameters()}
    (tmp / "pretraining.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # atomic: a reader sees no folder or a complete one
    print(f"[aigc.lm] offline base model saved to {folder} ({summary['seconds']:.0f} s, "
          f"val loss {history['eval'][-1]['val_loss']:.3f})")
    return folder


def load_causal_lm(hub_id: str | None, local_dir: str | os.PathLike | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from the hub when online (e.g. "gpt2", "distilgpt2"), else from ``local_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aigc_lib.hub import load_pretrained
    from aigc_lib.runtime import is_online

    model = load_pretrained(AutoModelForCausalLM, hub_id, local_dir, **kwargs)
    # the tokenizer comes from exactly where the model came from (hub id, cache or folder)
    tokenizer = AutoTokenizer.from_pretrained(model.name_or_path, local_files_only=not is_online())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_base_lm(hub_id: str | None, recipe: BaseRecipe | str = "quick", *, device: str | None = None,
                 online: bool | None = None, cache_dir: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """The model to fine-tune and its tokenizer: ``hub_id`` (e.g. "gpt2") from the hub or its local cache when
    it can be had, else the offline base that :func:`build_offline_base` pretrains (once) from ``recipe``."""
    from aigc_lib.hub import ModelNotAvailableError, find_source

    if hub_id is not None:
        try:
            find_source(hub_id, online=online)
            return load_causal_lm(hub_id)
        except ModelNotAvailableError as error:
            print(f"[aigc.lm] {hub_id!r} is not available ({str(error).split(':')[0]}); "
                  "using the offline base model instead")
    return load_causal_lm(None, build_offline_base(recipe, cache_dir, device=device))


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


def describe_lm(model: nn.Module) -> str:
    """One line: architecture, size and where the parameters are."""
    raw = _unwrap(model)
    total = sum(p.numel() for p in raw.parameters())
    trainable = sum(p.numel() for p in raw.parameters() if p.requires_grad)
    c = raw.config
    shape = f"{c.n_layer} layers x {c.n_head} heads x {c.n_embd} wide, context {getattr(c, 'block_size', None) or c.n_positions}"
    return (f"{type(raw).__name__}: {shape}, vocabulary {c.vocab_size:,}; {total / 1e6:.2f}M parameters "
            f"({trainable / total:.1%} trainable)")

