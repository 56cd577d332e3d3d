"""A causal language model as a zero-/few-shot classifier and as the ``generate`` of the guarded RAG (notebook 14).

Works with any Hugging Face causal LM and its tokenizer (``gpt2`` online, the course's offline GPT-2 from
``aigc_lib.lm.load_base_lm(None, "smoke")`` offline) and with the course's own :class:`aigc_lib.lm.GPT`:

- :func:`label_logprobs` scores label words as continuations of prompts (teacher forcing, one batched pass);
- :func:`sentiment_prompt` / :func:`classify_by_prompt` turn it into a headline sentiment classifier whose
  probabilities follow :data:`aigc_lib.apps.finance.LABELS`, optionally calibrated with a content-free prompt
  (Zhao et al. 2021, "Calibrate Before Use");
- :func:`lm_generate` wraps greedy decoding as ``generate(prompt) -> str`` for
  :func:`aigc_lib.apps.guardrails.rag_answer` and :class:`aigc_lib.apps.guardrails.Guardrails`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aigc_lib.apps.finance import LABELS
from aigc_lib.lm.training import lm_logits

__all__ = ["CONTENT_FREE", "LABEL_WORDS", "PROMPT_TEMPLATES", "classify_by_prompt", "label_logprobs",
           "lm_generate", "prompt_scores", "sentiment_prompt"]

# one label word per LABELS entry, in LABELS order; English words carry GPT-2's leading space (" positive" is
# one BPE token after "Sentiment:"), Chinese follows the full-width colon directly
LABEL_WORDS: dict[str, tuple[str, ...]] = {
    "en": (" negative", " neutral", " positive"),
    "zh": ("消极", "中性", "积极"),
}
PROMPT_TEMPLATES: dict[str, str] = {  # the query; a shot is the same text followed by its label word
    "en": "Headline: {headline}\nSentiment:",
    "zh": "新闻标题：{headline}\n情感：",
}
SHOT_SEPARATOR = "\n\n"
CONTENT_FREE = "N/A"  # the content-free headline of "Calibrate Before Use"


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _max_positions(model: torch.nn.Module) -> int | None:
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "block_size"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def label_logprobs(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], label_words: Sequence[str],
                   batch_size: int = 32) -> Tensor:
    """Summed log-probability (N, K) of each label word's tokens as the continuation of each prompt (notebook 14).

    The prompt and the label word are tokenized *separately* and their ids concatenated, so every label word
    is scored on the same tokens whatever the prompt; a label of several tokens sums their log-probabilities
    under teacher forcing (token j conditioned on the prompt and tokens < j). Write the space a word needs in
    the word itself: GPT-2's BPE merges a leading space into the token (" positive" is one token, "positive"
    after "Sentiment:" would be a different and rarer one). Prompts too long for the model lose their oldest
    tokens. Right-padded batches of ``batch_size`` (prompt, label) pairs, no gradient, the model left in eval.
    """
    if isinstance(prompts, str) or isinstance(label_words, str):
        raise TypeError("label_logprobs takes lists: prompts=[...] and label_words=[...], not a single string.")
    if not prompts or not label_words:
        raise ValueError(f"label_logprobs needs at least one prompt and one label word, got {len(prompts)} "
                         f"prompts and {len(label_words)} label words.")
    words = [_encode(tokenizer, w) for w in label_words]
    if any(not ids for ids in words):
        raise ValueError(f"every label word must encode to at least one token, got {list(label_words)}.")
    if any(not p for p in prompts):
        raise ValueError("a prompt is empty: the first label token needs a prompt token to be predicted from.")
    limit = _max_positions(model)
    pairs: list[tuple[list[int], list[int]]] = []
    for prompt in prompts:
        p_ids = _encode(tokenizer, prompt)
        for w_ids in words:
            keep = len(p_ids) if limit is None else limit - len(w_ids)
            if keep < 1:
                raise ValueError(f"a label word of {len(w_ids)} tokens does not fit the model's {limit} positions.")
            pairs.append((p_ids[-keep:], w_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    was_training, device = model.training, _device(model)
    model.eval()
    scores: list[Tensor] = []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            width = max(len(p) + len(w) for p, w in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (p, w) in enumerate(chunk):
                ids[row, :len(p) + len(w)] = torch.tensor(p + w)
                mask[row, :len(p) + len(w)] = 1
            logp = lm_logits(model, ids.to(device), mask.to(device)).float().log_softmax(-1).cpu()
            for row, (p, w) in enumerate(chunk):  # token p+j is predicted at position p+j-1
                positions = torch.arange(len(p) - 1, len(p) - 1 + len(w))
                scores.append(logp[row, positions, torch.tensor(w)].sum())
    finally:
        model.train(was_training)
    return torch.stack(scores).reshape(len(prompts), len(label_words))


def _check_lang(lang: str) -> str:
    if lang not in PROMPT_TEMPLATES:
        raise ValueError(f"lang must be one of {sorted(PROMPT_TEMPLATES)}, got {lang!r}.")
    return lang


def sentiment_prompt(headline: str, lang: str = "en", shots: Sequence[tuple[str, str]] = ()) -> str:
    """A zero-shot (no ``shots``) or few-shot prompt, shots given as (headline, label in LABELS) (notebook 14)."""
    template = PROMPT_TEMPLATES[_check_lang(lang)]
    if not headline.strip():
        raise ValueError("sentiment_prompt got an empty headline.")
    parts = []
    for shot in shots:
        text, label = shot
        if label not in LABELS:
            raise ValueError(f"a shot's label must be one of {LABELS}, got {label!r} for {text!r}.")
        parts.append(template.format(headline=text) + LABEL_WORDS[lang][LABELS.index(label)])
    parts.append(template.format(headline=headline))
    return SHOT_SEPARATOR.join(parts)


def prompt_scores(model: torch.nn.Module, tokenizer: Any, headlines: Sequence[str], lang: str = "en",
                  shots: Sequence[tuple[str, str]] = (), calibrate: bool = False) -> Tensor:
    """Label-word log-probabilities (N, 3) in LABELS order; ``calibrate`` subtracts those of the content-free
    headline "N/A" under the same shots, so a label the prompt favours by itself loses its head start (notebook 14)."""
    if isinstance(headlines, str) or not headlines:
        raise ValueError("prompt_scores needs a non-empty list of headlines.")
    words = list(LABEL_WORDS[_check_lang(lang)])
    scores = label_logprobs(model, tokenizer, [sentiment_prompt(h, lang, shots) for h in headlines], words)
    if calibrate:
        scores = scores - label_logprobs(model, tokenizer, [sentiment_prompt(CONTENT_FREE, lang, shots)], words)
    return scores


def classify_by_prompt(model: torch.nn.Module, tokenizer: Any, headlines: Sequence[str], lang: str = "en",
                       shots: Sequence[tuple[str, str]] = (), calibrate: bool = False
                       ) -> tuple[list[str], np.ndarray]:
    """Labels and probabilities (N, 3) in LABELS order: a softmax over the label words' scores from
    :func:`prompt_scores` (notebook 14)."""
    probs = prompt_scores(model, tokenizer, headlines, lang, shots, calibrate).softmax(-1).double().numpy()
    return [LABELS[i] for i in probs.argmax(1)], probs


def lm_generate(model: torch.nn.Module, tokenizer: Any, max_new_tokens: int = 60,
                stop: str | None = "\n") -> Callable[[str], str]:
    """A greedy ``generate(prompt) -> str`` returning only the new text, cut before ``stop`` (none: keep all) and
    ended at EOS (works for Hugging Face models and the course's GPT alike), for :func:`~aigc_lib.apps.guardrails.rag_answer` and ``Guardrails`` (notebook 14)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    if stop == "":
        raise ValueError("stop is an empty string: pass None to keep all the generated text.")
    limit = _max_positions(model)
    if limit is not None and max_new_tokens >= limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in {limit} positions.")
    eos = tokenizer.eos_token_id

    @torch.no_grad()
    def generate(prompt: str) -> str:
        ids = _encode(tokenizer, prompt)
        if not ids:
            raise ValueError("generate got an empty prompt.")
        if limit is not None:
            ids = ids[-(limit - max_new_tokens):]  # the oldest tokens go, the question at the end stays
        was_training, device = model.training, _device(model)
        model.eval()
        new: list[int] = []
        try:
            for _ in range(max_new_tokens):  # a full forward per token: no cache API to depend on, fine for 60
                logits = lm_logits(model, torch.tensor([ids + new], device=device))
                token = int(logits[0, -1].argmax())
                if token == eos:
                    break
                new.append(token)
                if stop is not None and stop in tokenizer.decode(new):
                    break
        finally:
            model.train(was_training)
        text = tokenizer.decode(new)
        return text.split(stop)[0] if stop is not None else text

    return generate
