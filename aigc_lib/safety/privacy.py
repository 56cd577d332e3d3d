"""Privacy: what a generative model remembers. Canaries and exposure, membership inference, extraction (notebook 12).

A language model trained on private text can give parts of it back. Three measurements, from the weakest
attacker question to the strongest:

- membership inference by a loss threshold (Yeom, Giacomelli, Fredrikson & Jha, "Privacy Risk in Machine
  Learning: Analyzing the Connection to Overfitting", CSF 2018): guess "member" when the model's loss on an item
  is low. :func:`membership_auc` is the area under that attack's ROC curve, 0.5 when the model has no memory;
- exposure of a canary (Carlini, Liu, Erlingsson, Kos & Song, "The Secret Sharer: Evaluating and Testing
  Unintended Memorization in Neural Networks", USENIX Security 2019): a secret ``s[r]`` made by filling a
  template with randomness ``r`` from a known space R is inserted into the training data; the model ranks
  every filling by log-perplexity and ``exposure = log2 |R| - log2 rank(s[r])`` (their Definition 4).
  A canary the model never saw has exposure about 1/ln 2 = 1.44 on average; log2 |R| means rank 1;
- extraction (the same paper, section 8; Carlini et al., "Extracting Training Data from Large Language
  Models", USENIX Security 2021): greedy decoding from the secret's prefix gives the secret verbatim.

``model`` is our :class:`~aigc_lib.lm.model.GPT` or a Hugging Face causal LM (anything
:func:`~aigc_lib.lm.training.lm_logits` accepts); ``encode`` maps a string to token ids (``tokenizer.encode``).
A model is scored in eval mode and its mode is restored afterwards.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from aigc_lib.lm.decoding import generate
from aigc_lib.lm.training import lm_loss

__all__ = ["canary_space", "exposure", "exposure_from_scores", "extraction_rate", "make_canaries",
           "membership_auc", "membership_roc", "membership_scores", "sequence_log_perplexity"]

Encode = Callable[[str], Sequence[int]]
MAX_SPACE = 10**6  # the largest randomness space canary_space lists whole (exact exposure scores all of it)


# --------------------------------------------------------------------------------------------- canaries
def _check_template(template: str, digits: int) -> None:
    if not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits is the number of random digits in a canary and must be an integer >= 1, got "
                         f"{digits!r}; the Secret Sharer's canaries use 9 ('my SSN is ...'), PINs 4.")
    if template.count("{}") != 1:
        raise ValueError(f"template needs exactly one '{{}}' where the random digits go, got {template!r}: "
                         "e.g. 'my pin is {}'.")


def make_canaries(n: int, template: str = "my pin is {}", digits: int = 4, seed: int = 0) -> list[str]:
    """``n`` distinct secrets ``template.format(r)``, r uniform over the 10**digits zero-padded numbers (12)."""
    _check_template(template, digits)
    if not isinstance(n, int) or not 1 <= n <= 10**digits:
        raise ValueError(f"n must be between 1 and the size of the space 10**{digits}, got {n!r}.")
    fillings = random.Random(seed).sample(range(10**digits), n)  # without replacement: distinct canaries
    return [template.format(f"{r:0{digits}d}") for r in fillings]


def canary_space(template: str = "my pin is {}", digits: int = 4, n: int | None = None,
                 seed: int = 0) -> list[str]:
    """Every filling of ``template`` (R, in order), or ``n`` of them drawn uniformly without replacement (12)."""
    _check_template(template, digits)
    size = 10**digits
    if n is None:
        if size > MAX_SPACE:
            raise ValueError(f"the space 10**{digits} is too large to list whole (over {MAX_SPACE:,}): pass n= to "
                             "sample candidates and use exposure(..., space_size=10**digits), the estimate.")
        return [template.format(f"{r:0{digits}d}") for r in range(size)]
    return make_canaries(n, template, digits, seed)


# ----------------------------------------------------------------------------------- log-perplexity
@torch.no_grad()
def sequence_log_perplexity(model: nn.Module, encode: Encode, texts: Sequence[str],
                            batch_size: int = 512) -> Tensor:
    """Total negative log-likelihood in nats, -sum_t log p(x_t | x_<t), of each text (N,), float64 (12).

    The Secret Sharer's log-perplexity (section 3, written there in bits; the ranking is the same). The first
    token has no context and is not scored, so compare texts that share their first token, as the fillings of
    one template do. Texts of different lengths are right-padded in a batch; padding is never scored.
    """
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings; wrap a single text as [text].")
    ids = [list(encode(text)) for text in texts]
    if min(len(i) for i in ids) < 2:
        raise ValueError("every text needs at least two tokens: the first is context, the rest are scored.")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            T = max(len(i) for i in chunk)
            batch = torch.zeros(len(chunk), T, dtype=torch.long)  # (B, T), right-padded with token 0
            mask = torch.zeros(len(chunk), T, dtype=torch.long)  # (B, T), 1 on real tokens
            for row, seq in enumerate(chunk):
                batch[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            batch, mask = batch.to(device), mask.to(device)
            labels = batch.masked_fill(mask == 0, -100)
            # -log p(x_t | x_<t) for t = 1..T-1: the shifted loss, unreduced, (B * (T-1),) -> (B, T-1)
            nll = lm_loss(model, {"input_ids": batch, "attention_mask": mask, "labels": labels}, reduction="none")
            out.append(nll.view(len(chunk), T - 1).double().sum(1).cpu())  # ignored positions are 0
    finally:
        model.train(was_training)
    return torch.cat(out)


# ------------------------------------------------------------------------------------------ exposure
def exposure_from_scores(canary_score: float, candidate_scores: Tensor, space_size: int | None = None) -> float:
    """Exposure from log-perplexities: exact over the whole space, or the estimate from a sample of it (12).

    Exact (``space_size=None``; ``candidate_scores`` cover all of R, the canary included): the rank is
    ``#{r in R : Px(r) <= Px(canary)}``, so a candidate that ties with the canary ranks ahead of it (a model
    that scores every filling alike exposes nothing: exposure 0), and exposure = log2 |R| - log2 rank (Def. 4).

    Estimate (``space_size`` = |R|, ``candidate_scores`` a uniform sample of R): exposure = -log2 P(Px(r) <=
    Px(canary)), with P from a skew-normal fitted to the sampled scores (section 4.3, "approximation by
    distribution modeling"), which extrapolates past the smallest sampled score; capped at log2 |R|.
    """
    scores = torch.as_tensor(candidate_scores, dtype=torch.float64).flatten()
    if len(scores) == 0 or not torch.isfinite(scores).all() or not math.isfinite(canary_score):
        raise ValueError("candidate_scores must be a non-empty tensor of finite log-perplexities and canary_score "
                         "a finite number: score them with sequence_log_perplexity.")
    if space_size is None:
        rank = int((scores <= canary_score).sum())
        if rank == 0:
            raise ValueError("the canary scores lower than every candidate, so it is not among them: for the exact "
                             "exposure the candidates are the whole space R (canary_space), canary included; for "
                             "a sample of R pass space_size=|R|.")
        return math.log2(len(scores)) - math.log2(rank)  # Definition 4
    if space_size < len(scores):
        raise ValueError(f"space_size={space_size} is smaller than the {len(scores)} candidates sampled from it.")
    from scipy.stats import skewnorm

    shape, loc, scale = skewnorm.fit(scores.numpy())
    log_cdf = float(skewnorm.logcdf(canary_score, shape, loc, scale))  # ln P(Px(r) <= Px(canary))
    return min(math.log2(space_size), max(0.0, -log_cdf / math.log(2)))


def exposure(model: nn.Module, encode: Encode, canary: str, candidates: Sequence[str], *,
             space_size: int | None = None, batch_size: int = 512) -> float:
    """Exposure of ``canary`` (Carlini et al. 2019, Def. 4): log2 |R| - log2 of its rank by log-perplexity (12).

    ``candidates`` is the whole space R (exact: :func:`canary_space` lists the 10**4 PINs), or, with
    ``space_size=|R|``, a uniform sample of R for the paper's skew-normal estimate (see
    :func:`exposure_from_scores`). Values run from 0 to log2 |R|; about 1.44 for a canary never trained on.
    """
    if space_size is None:
        if len(set(candidates)) != len(candidates):
            raise ValueError("candidates hold duplicates: the exact exposure ranks each filling of R once; "
                             "build them with canary_space(template, digits).")
        if canary not in set(candidates):
            raise ValueError(f"the canary {canary!r} is not among the candidates: for the exact exposure pass the "
                             "whole space R (canary_space), or a sample of it with space_size=|R|.")
    scores = sequence_log_perplexity(model, encode, list(candidates), batch_size)  # (|candidates|,)
    canary_score = float(sequence_log_perplexity(model, encode, [canary])[0])
    if space_size is None:  # score the canary where it sits in the list, so its tie with itself is exact
        canary_score = float(scores[list(candidates).index(canary)])
    return exposure_from_scores(canary_score, scores, space_size)


# ------------------------------------------------------------------------------ membership inference
def _row_losses(model: nn.Module, rows: Tensor) -> Tensor:
    """Mean next-token loss of each packed row (N, T+1) from :func:`~aigc_lib.lm.data.pack_blocks`: (N,)."""
    return lm_loss(model, rows, reduction="none").view(len(rows), -1).mean(1)


@torch.no_grad()
def membership_scores(model: nn.Module, members: Tensor, non_members: Tensor,
                      loss_fn: Callable[[nn.Module, Tensor], Tensor] | None = None,
                      batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Per-item losses (members (N,), non-members (M,)), the scores of Yeom et al.'s threshold attack (12).

    ``loss_fn(model, items)`` returns one loss per item (n,); the default is the mean next-token loss of packed
    token rows (N, T+1), as :func:`~aigc_lib.lm.data.pack_blocks` makes them. For a classifier pass e.g.
    ``lambda m, xy: F.cross_entropy(m(xy[..., :-1]), xy[..., -1].long(), reduction='none')``.
    """
    loss_fn = loss_fn or _row_losses
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    result = []
    try:
        for name, items in (("members", members), ("non_members", non_members)):
            if not isinstance(items, Tensor) or len(items) == 0:
                raise ValueError(f"{name} must be a non-empty tensor of items (N, ...), e.g. token rows from "
                                 f"pack_blocks; got {type(items).__name__}.")
            losses = [loss_fn(model, chunk.to(device)).float().cpu() for chunk in items.split(batch_size)]
            losses = torch.cat([loss.reshape(-1) for loss in losses])
            if losses.shape != (len(items),):
                raise ValueError(f"loss_fn must return one loss per item, shape ({len(items)},), got "
                                 f"{tuple(losses.shape)}: use reduction='none' and average over tokens per item.")
            result.append(losses)
    finally:
        model.train(was_training)
    return result[0], result[1]


def _check_losses(member_losses: Tensor, nonmember_losses: Tensor) -> tuple[Tensor, Tensor]:
    member = torch.as_tensor(member_losses, dtype=torch.float64).flatten()
    nonmember = torch.as_tensor(nonmember_losses, dtype=torch.float64).flatten()
    if len(member) == 0 or len(nonmember) == 0:
        raise ValueError("membership needs at least one member loss and one non-member loss.")
    if not (torch.isfinite(member).all() and torch.isfinite(nonmember).all()):
        raise ValueError("losses must be finite: a NaN or inf loss means the model or the data is broken.")
    return member, nonmember


def membership_auc(member_losses: Tensor, nonmember_losses: Tensor) -> float:
    """Area under the ROC curve of "lower loss => member": P(loss_member < loss_non) + P(tie) / 2 (12).

    The Mann-Whitney U statistic over N * M pairs, from mid-ranks (ties get the mean of their ranks), so it
    equals ``sklearn.metrics.roc_auc_score(is_member, -loss)``. 0.5: the losses tell nothing; 1: every member
    has a lower loss than every non-member.
    """
    member, nonmember = _check_losses(member_losses, nonmember_losses)
    scores = -torch.cat([member, nonmember])  # (N + M,) higher score = more member-like
    sorted_scores, order = scores.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # rank of each tie group's last element (1-based)
    mid = last - (counts.double() - 1) / 2  # mid-rank of each tie group
    ranks = torch.empty_like(scores)
    ranks[order] = mid[inverse]
    n, m = len(member), len(nonmember)
    u = ranks[:n].sum() - n * (n + 1) / 2  # Mann-Whitney U of the members
    return float(u / (n * m))


def membership_roc(member_losses: Tensor, nonmember_losses: Tensor) -> dict[str, Tensor]:
    """ROC points of the loss-threshold attack "member iff loss <= tau", for every tau, from (0, 0) (12).

    ``fpr`` (share of non-members called members), ``tpr`` (share of members caught) and ``thresholds``
    (tau; the first is -inf), as ``sklearn.metrics.roc_curve(is_member, -loss, drop_intermediate=False)``
    with thresholds negated. ``advantage`` is max(tpr - fpr), Yeom et al.'s membership advantage (Def. 4).
    """
    member, nonmember = _check_losses(member_losses, nonmember_losses)
    thresholds = torch.unique(torch.cat([member, nonmember]))  # (K,) ascending
    tpr = (member[None, :] <= thresholds[:, None]).double().mean(1)  # (K,)
    fpr = (nonmember[None, :] <= thresholds[:, None]).double().mean(1)  # (K,)
    zero = torch.zeros(1, dtype=torch.float64)
    tpr, fpr = torch.cat([zero, tpr]), torch.cat([zero, fpr])
    thresholds = torch.cat([torch.tensor([-math.inf], dtype=torch.float64), thresholds])
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds, "advantage": (tpr - fpr).max()}


# ---------------------------------------------------------------------------------------- extraction
def extraction_rate(model: nn.Module, encode: Encode, decode: Callable[[Sequence[int]], str],
                    prefixes: Sequence[str], secrets: Sequence[str], max_new_tokens: int | None = None) -> float:
    """Share of secrets that greedy decoding from their prefix reproduces verbatim (Carlini et al. 2019, 2021) (12).

    ``secrets[i]`` is what should follow ``prefixes[i]`` (e.g. the digits after 'my pin is '); the completion
    counts when its decoded text starts with the secret. ``max_new_tokens`` defaults to the secret's length in
    tokens plus 2.
    """
    if isinstance(prefixes, str) or isinstance(secrets, str) or len(prefixes) != len(secrets) or not prefixes:
        raise ValueError(f"prefixes and secrets must be non-empty lists of equal length, got {len(prefixes)} and "
                         f"{len(secrets)}: secrets[i] is the text that should follow prefixes[i].")
    hits = 0
    for prefix, secret in zip(prefixes, secrets):
        prompt = list(encode(prefix))
        budget = max_new_tokens or len(encode(secret)) + 2
        out = generate(model, prompt, max_new_tokens=budget)[0, len(prompt):]
        hits += decode(out.tolist()).startswith(secret)
    return hits / len(secrets)
