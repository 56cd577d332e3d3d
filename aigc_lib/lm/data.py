"""Causal-LM data: packing a corpus into blocks, Q&A pairs with masked prompts, the padding collator (05)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from aigc_lib.lm.model import IGNORE_INDEX

__all__ = ["QA_TEMPLATE", "CausalLMCollator", "encode_corpus", "encode_qa", "pack_blocks", "qa_batches"]


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
