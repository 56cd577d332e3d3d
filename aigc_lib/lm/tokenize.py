"""Tokenizers for the language-model chapters: characters (04) and byte-level BPE like GPT-2's (05)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aigc_lib.hub import load_pretrained

__all__ = ["EOS", "CharTokenizer", "load_tokenizer", "train_bpe_tokenizer"]

EOS = "<|endoftext|>"  # GPT-2's one special token: end of text, also used as padding


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

    tokenizer = load_pretrained(AutoTokenizer, hub_id, local_dir, **kwargs)
    if tokenizer.pad_token is None:  # GPT-2 has none; padded positions are masked from the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
