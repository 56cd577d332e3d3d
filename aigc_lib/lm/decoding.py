"""Decoding (chapter 05): greedy, beam search, temperature, top-k, top-p and the repetition penalty.

Hugging Face models go through their own ``generate``; our GPT runs the plain loops written here, with a KV
cache (notebook 04) unless ``use_cache=False``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from aigc_lib.lm.model import GPT, KVCache, is_hf_model, unwrap_model

__all__ = ["DECODING", "apply_repetition_penalty", "complete", "filter_logits", "generate"]


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
             eos_token_id: int | None = None, seed: int | None = None, use_cache: bool = True) -> Tensor:
    """Continue ``input_ids`` (T,) or (B, T): returns (B * num_return_sequences, T + new) token ids.

    Hugging Face models go through their own ``generate`` (with these same settings); our :class:`GPT` runs the
    plain loops below. With ``use_cache`` (notebook 04) each step feeds only the new token and reads the
    keys and values of the earlier ones from a :class:`KVCache`; ``use_cache=False`` recomputes the whole
    context at every step. Both give the same tokens. ``seed`` makes sampling repeatable without touching the
    global random state.
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    ids = ids[None] if ids.dim() == 1 else ids
    raw = unwrap_model(model)
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
                                    pad_token_id=eos, use_cache=use_cache)
            if num_beams > 1:
                return torch.cat([_beam_search(raw, row, max_new_tokens, num_beams, num_return_sequences,
                                               eos_token_id, repetition_penalty, use_cache) for row in ids])
            ids = ids.repeat_interleave(num_return_sequences, dim=0)
            return _sample_loop(raw, ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                                repetition_penalty, eos_token_id, KVCache() if use_cache else None)
    finally:
        raw.train(was_training)


def _next_logits(model: GPT, ids: Tensor, cache: KVCache | None = None) -> Tensor:
    """(B, V) logits of the token after ``ids`` (B, T): only the last position predicts the next token.

    Without a cache the whole context runs through the model; with one, only the tokens it has not seen yet.
    Past ``block_size`` the context is cropped to its last ``block_size`` tokens, which moves every token to a
    new position: the cached keys and values are stale, so the cropped context is recomputed into the cache
    (the same logits as without a cache, at the cost of a full forward per token)."""
    block_size = model.config.block_size
    if cache is None:
        return model(ids[:, -block_size:])[:, -1, :].float()  # crop to the context the model was trained on
    if ids.size(1) > block_size:
        cache.reset()
        return model(ids[:, -block_size:], kv_cache=cache)[:, -1, :].float()
    return model(ids[:, len(cache):], kv_cache=cache)[:, -1, :].float()  # the (B, T - len(cache)) new ids


def _sample_loop(model: GPT, ids: Tensor, max_new_tokens: int, do_sample: bool, temperature: float,
                 top_k: int, top_p: float, repetition_penalty: float, eos_token_id: int | None,
                 cache: KVCache | None = None) -> Tensor:
    finished = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = apply_repetition_penalty(_next_logits(model, ids, cache), ids, repetition_penalty)
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
                 eos_token_id: int | None, repetition_penalty: float, use_cache: bool = True) -> Tensor:
    """Keep the ``num_beams`` most probable continuations (sum of log-probabilities) at every step; a beam that
    emits EOS is finished, scored by its mean log-probability per new token (length_penalty 1, as in HF)."""
    if num_return > num_beams:
        raise ValueError(f"num_return_sequences={num_return} is more than num_beams={num_beams}.")
    beams, scores = prompt[None], torch.zeros(1, device=prompt.device)  # (beams, T), (beams,)
    finished: list[tuple[float, Tensor]] = []
    cache = KVCache() if use_cache else None
    for step in range(1, max_new_tokens + 1):
        logits = apply_repetition_penalty(_next_logits(model, beams, cache), beams, repetition_penalty)
        vocab = logits.size(-1)
        total = (scores[:, None] + logits.log_softmax(-1)).flatten()  # every (beam, token) extension
        live, live_scores, sources = [], [], []
        for rank, index in enumerate(total.topk(min(2 * num_beams, total.numel())).indices.tolist()):
            beam, token = divmod(index, vocab)
            seq = torch.cat([beams[beam], beams.new_tensor([token])])
            if token == eos_token_id:
                if rank < num_beams:  # an EOS that is not among the best num_beams is not kept
                    finished.append((float(total[index]) / step, seq))
            elif len(live) < num_beams:
                live.append(seq)
                live_scores.append(total[index])
                sources.append(beam)
        beams, scores = torch.stack(live), torch.stack(live_scores)
        if cache is not None:  # each live beam continues the cache row of the beam it extends
            cache.reorder(torch.tensor(sources, device=beams.device))
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
