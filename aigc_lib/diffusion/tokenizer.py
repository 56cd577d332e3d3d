"""The text side of the mini Stable Diffusion (chapter 08): a CLIP-format BPE tokenizer trained offline on captions.

The tokenizer is trained with ``tokenizers`` and handed to ``transformers`` the way every CLIP tokenizer is
stored, as ``vocab.json`` and ``merges.txt``, so the same code works with transformers 4 (a Python tokenizer)
and 5 (backed by ``tokenizers``).
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["tokenize", "train_caption_tokenizer"]


def train_caption_tokenizer(texts: Sequence[str], max_length: int = 16, vocab_size: int = 400) -> Any:
    """A CLIP-format BPE tokenizer (``CLIPTokenizer``) trained on captions, offline (notebook 08).

    Same format as Stable Diffusion's: lower case, words end in ``</w>``, ``<|startoftext|>``/``<|endoftext|>``
    around every prompt and ``<|endoftext|>`` as padding up to ``max_length``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("train_caption_tokenizer got no text: pass the captions of the training images.")
    specials = ["<|startoftext|>", "<|endoftext|>"]
    bpe = Tokenizer(models.BPE(unk_token=None, end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = sorted(set("".join(texts).lower()) | set("abcdefghijklmnopqrstuvwxyz"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, end_of_word_suffix="</w>",
                                  initial_alphabet=alphabet, show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]  # "a b" per merge rule
    with tempfile.TemporaryDirectory() as folder:
        # CLIP's file format: vocab.json (token -> id) and merges.txt (a version line, then one rule a line)
        Path(folder, "vocab.json").write_text(json.dumps(state["vocab"], ensure_ascii=False), encoding="utf-8")
        Path(folder, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=max_length)
    tokenizer.model_max_length = max_length
    return tokenizer


def tokenize(tokenizer: Any, prompts: Sequence[str]) -> Tensor:
    """(N, L) ids padded to model_max_length, exactly as StableDiffusionPipeline pads them (notebook 08)."""
    too_long = [p for p in prompts if len(tokenizer(p).input_ids) > tokenizer.model_max_length]
    if too_long:
        raise ValueError(f"{len(too_long)} prompt(s) exceed {tokenizer.model_max_length} tokens, e.g. {too_long[0]!r}.")
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids
