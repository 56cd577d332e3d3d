"""Detecting generated content without a watermark: zero-shot text detectors, a real-vs-fake image CNN (11).

Text. A language model that wrote a text tends to find it likely. Three zero-shot scores, higher = "more
machine-like", all computed under a *scoring* language model (the generator itself when we can query it, the
"white-box" case, or another model, the realistic case):

- mean log-likelihood ``(1/T) sum_t log p(x_t | x_<t)`` (the statistic behind GLTR, Gehrmann, Strobelt & Rush,
  ACL 2019 demo, and the baselines of Solaiman et al., "Release Strategies and the Social Impacts of Language
  Models", arXiv:1908.09203, 2019);
- mean negative log-rank ``-(1/T) sum_t log rank(x_t)`` where rank 1 is the model's top token (a baseline of
  Mitchell et al. 2023);
- DetectGPT's normalised perturbation discrepancy (Mitchell, Lee, Khazatsky, Manning & Finn, "DetectGPT:
  Zero-Shot Machine-Generated Text Detection using Probability Curvature", ICML 2023, arXiv:2301.11305):
  ``(log p(x) - mean_i log p(x~_i)) / std_i log p(x~_i)`` over k perturbations x~_i of x. A model's own
  samples sit near a local maximum of its log-probability, so perturbing them lowers it more than perturbing
  human text. DetectGPT perturbs with T5 mask-filling; :func:`perturb_tokens` instead resamples a fraction of
  the tokens from a (second) causal LM given the left context, which needs no extra model (see its docstring).

Each detector's quality is the area under its ROC curve; :func:`detection_auc` and :func:`detection_roc` reuse
the Mann-Whitney AUC and threshold sweep of :mod:`aigc_lib.safety.privacy` (scores instead of losses).

Images. :func:`radial_power_spectrum` is the azimuthally averaged log power spectrum, whose high frequencies
up-convolutions fail to reproduce (Durall, Keuper & Keuper, "Watch your Up-Convolution", CVPR 2020,
arXiv:2003.01826);
:class:`RealFakeDetector` is a small CNN trained by :func:`train_detector` to tell real from generated images
(Wang et al., "CNN-generated images are surprisingly easy to spot... for now", CVPR 2020, arXiv:1912.11035).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aigc_lib.data import TensorLoader
from aigc_lib.lm.training import lm_logits
from aigc_lib.safety.privacy import membership_auc, membership_roc
from aigc_lib.train import TrainConfig, Trainer

__all__ = ["RealFakeDetector", "detectgpt_score", "detection_auc", "detection_roc", "detector_scores",
           "edit_words", "generate_texts", "log_likelihood_score", "log_rank_score", "perturb_tokens",
           "radial_power_spectrum", "score_tokens", "token_log_probs", "train_detector", "words_of"]

Sequences = Sequence[Sequence[int]]


# ----------------------------------------------------------------------------------------- token scores
def _check_sequences(sequences: Sequences) -> list[list[int]]:
    if isinstance(sequences, Tensor):
        sequences = sequences.tolist()
    if isinstance(sequences, str) or len(sequences) == 0 or isinstance(sequences[0], int):
        raise ValueError("sequences must be a non-empty list of token-id lists, e.g. "
                         "[tokenizer.encode(t) for t in texts]; wrap a single text as [ids].")
    seqs = [list(map(int, s)) for s in sequences]
    if min(len(s) for s in seqs) < 2:
        raise ValueError("every sequence needs at least two tokens: the first is context, the rest are "
                         "scored (prepend tokenizer.eos_token_id to score a text's first token).")
    return seqs


def _pad(seqs: list[list[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)  # (B, T) right-padded with token 0
    mask = torch.zeros(len(seqs), T, dtype=torch.long)  # (B, T) 1 on real tokens
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = torch.tensor(s)
        mask[row, :len(s)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def token_log_probs(model: nn.Module, ids: Tensor, attention_mask: Tensor | None = None,
                    with_ranks: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """log p(x_t | x_<t) for t = 1..T-1 of a batch ``ids`` (B, T): (B, T-1), and ranks (B, T-1) if asked (11).

    The rank of a token is 1 + the number of vocabulary entries with a strictly larger logit (1 = top token).
    Padded positions (``attention_mask`` 0) get log-prob 0 and rank 1. The model runs in eval mode.
    """
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids must be a (B, T) tensor of token ids with T >= 2, got "
                         f"{tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__}.")
    was_training = model.training
    model.eval()
    try:
        logits = lm_logits(model, ids, attention_mask).float()[:, :-1]  # (B, T-1, V): predicts tokens 1..T-1
    finally:
        model.train(was_training)
    targets = ids[:, 1:]  # (B, T-1)
    logp_all = logits.log_softmax(-1)  # (B, T-1, V)
    logp = logp_all.gather(-1, targets[..., None])[..., 0]  # (B, T-1)
    if attention_mask is None:
        valid = torch.ones_like(targets, dtype=torch.bool)  # (B, T-1)
    else:
        valid = attention_mask[:, 1:].bool()  # (B, T-1)
    logp = logp.masked_fill(~valid, 0.0)
    if not with_ranks:
        return logp
    target_logit = logits.gather(-1, targets[..., None])  # (B, T-1, 1)
    ranks = 1 + (logits > target_logit).sum(-1)  # (B, T-1)
    return logp, ranks.masked_fill(~valid, 1)


@torch.no_grad()
def score_tokens(model: nn.Module, sequences: Sequences, batch_size: int = 64) -> dict[str, Tensor]:
    """Both zero-shot scores of each sequence in one pass: ``log_likelihood``, ``log_rank`` (N,) float64 (11).

    ``log_likelihood`` = mean over scored tokens of log p(x_t | x_<t); ``log_rank`` = minus the mean of
    log rank(x_t). Higher means "more like the scoring model's own text" for both.
    """
    seqs = _check_sequences(sequences)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    device = next(model.parameters()).device
    ll, lr = [], []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        ids, mask = _pad(chunk, device)
        logp, ranks = token_log_probs(model, ids, mask, with_ranks=True)
        n = mask[:, 1:].sum(1).double()  # scored tokens per row
        ll.append((logp.double().sum(1) / n).cpu())
        lr.append((-(ranks.double().log() * mask[:, 1:]).sum(1) / n).cpu())
    return {"log_likelihood": torch.cat(ll), "log_rank": torch.cat(lr)}


def log_likelihood_score(model: nn.Module, sequences: Sequences, batch_size: int = 64) -> Tensor:
    """Mean per-token log-likelihood of each sequence under ``model`` (N,); higher = machine-like (11)."""
    return score_tokens(model, sequences, batch_size)["log_likelihood"]


def log_rank_score(model: nn.Module, sequences: Sequences, batch_size: int = 64) -> Tensor:
    """Minus the mean log-rank of each sequence's tokens under ``model`` (N,); higher = machine-like (11)."""
    return score_tokens(model, sequences, batch_size)["log_rank"]


# --------------------------------------------------------------------------------------- perturbations
@torch.no_grad()
def perturb_tokens(model: nn.Module, sequences: Sequences, k: int = 10, fraction: float = 0.15, *,
                   temperature: float = 1.0, skip_first: int = 1, seed: int = 0,
                   batch_size: int = 64) -> list[list[list[int]]]:
    """``k`` perturbed copies of each sequence: a ``fraction`` of its tokens resampled from ``model`` (11).

    Each chosen position t is replaced by a token drawn from p(. | x_<t) of the *original* left context at
    ``temperature``, with the original token excluded (so every chosen position changes). One forward pass per
    sequence gives all the conditionals, so k copies cost no extra model calls. Unlike DetectGPT's T5
    mask-filling, which rewrites spans of ~2 words using context on both sides, the replacement sees only the
    left context and may clash with what follows; the copies keep the token count, so per-token means compare.
    The first ``skip_first`` tokens (the context token) are never changed.
    """
    seqs = _check_sequences(sequences)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k (perturbations per text) must be an integer >= 2 so their std exists, "
                         f"got {k!r}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction is the share of tokens to resample, in (0, 1], got {fraction!r}; "
                         "DetectGPT masks about 15% of the words.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out: list[list[list[int]]] = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        ids, mask = _pad(chunk, device)
        was_training = model.training
        model.eval()
        try:
            logits = lm_logits(model, ids, mask).float()[:, :-1].cpu()  # (B, T-1, V): p(x_t | x_<t), t >= 1
        finally:
            model.train(was_training)
        for row, s in enumerate(chunk):
            positions = list(range(max(1, skip_first), len(s)))
            n_change = max(1, round(fraction * len(positions)))
            probs = (logits[row, :len(s) - 1] / temperature).softmax(-1)  # (T-1, V)
            probs = probs.clamp_min(1e-30)  # a row that is all on the original token still has other choices
            probs[torch.arange(len(s) - 1), torch.tensor(s[1:])] = 0.0  # never redraw the original token
            copies = []
            for _ in range(k):
                chosen = torch.randperm(len(positions), generator=gen)[:n_change]
                new = list(s)
                for c in chosen.tolist():
                    t = positions[c]
                    new[t] = int(torch.multinomial(probs[t - 1], 1, generator=gen))
                copies.append(new)
            out.append(copies)
    return out


def detectgpt_score(scorer: nn.Module, perturber: nn.Module, sequences: Sequences, k: int = 10,
                    fraction: float = 0.15, *, seed: int = 0, batch_size: int = 64,
                    return_parts: bool = False) -> Tensor | dict[str, Tensor]:
    """DetectGPT's normalised perturbation discrepancy of each sequence under ``scorer`` (N,) (11).

    ``(ll(x) - mean_i ll(x~_i)) / std_i ll(x~_i)`` with ll the mean per-token log-likelihood under ``scorer``
    and x~_i the :func:`perturb_tokens` copies made with ``perturber``: Mitchell et al.'s perturbation
    discrepancy (their eq. 1) divided by the std of the perturbed scores, the variant they found works better.
    ``return_parts`` adds ``ll``, ``perturbed_mean`` and ``perturbed_std`` (N,) each.
    """
    seqs = _check_sequences(sequences)
    copies = perturb_tokens(perturber, seqs, k, fraction, seed=seed, batch_size=batch_size)
    ll = log_likelihood_score(scorer, seqs, batch_size)  # (N,)
    flat = [c for group in copies for c in group]
    ll_pert = log_likelihood_score(scorer, flat, batch_size).view(len(seqs), k)  # (N, k)
    mean, std = ll_pert.mean(1), ll_pert.std(1).clamp_min(1e-6)
    score = (ll - mean) / std
    if return_parts:
        return {"score": score, "ll": ll, "perturbed_mean": mean, "perturbed_std": std}
    return score


# ------------------------------------------------------------------------------------------- text helpers
@torch.no_grad()
def generate_texts(model: nn.Module, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 48, *,
                   temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 32,
                   stop: str | None = "\n") -> list[str]:
    """Sampled continuations of ``prompts`` from a Hugging Face causal LM, batched with left padding (11).

    Each continuation is cut at the first EOS token and at ``stop``; ``seed`` makes the draw repeatable
    without touching the global random state.
    """
    if isinstance(prompts, str) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of strings; wrap a single prompt as [prompt].")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (1.0 = the model's own distribution), "
                         f"got {temperature!r}.")
    eos = tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts = []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(prompts), batch_size):
                encoded = [tokenizer.encode(p) for p in prompts[start:start + batch_size]]
                T = max(len(e) for e in encoded)
                ids = torch.full((len(encoded), T), eos, dtype=torch.long)  # left-padded with EOS
                mask = torch.zeros(len(encoded), T, dtype=torch.long)
                for row, e in enumerate(encoded):
                    ids[row, T - len(e):] = torch.tensor(e)
                    mask[row, T - len(e):] = 1
                out = model.generate(ids.to(device), attention_mask=mask.to(device), do_sample=True,
                                     temperature=temperature, top_p=top_p, top_k=0,
                                     max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos)
                for row in out[:, T:].tolist():
                    new = row[: row.index(eos)] if eos in row else row
                    text = tokenizer.decode(new)
                    texts.append(text.split(stop)[0] if stop else text)
    finally:
        model.train(was_training)
    return texts


def edit_words(text: str, fraction: float, vocabulary: Sequence[str], seed: int = 0) -> str:
    """``text`` with a ``fraction`` of its words replaced by random words from ``vocabulary`` (11)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction is the share of words to replace, in [0, 1], got {fraction!r}.")
    if isinstance(vocabulary, str) or len(vocabulary) == 0:
        raise ValueError("vocabulary must be a non-empty list of replacement words, e.g. the words of the "
                         "training answers (never the test texts).")
    words = text.split(" ")
    rng = random.Random(seed)
    n = round(fraction * len(words))
    for i in rng.sample(range(len(words)), n):
        words[i] = rng.choice(vocabulary)
    return " ".join(words)


def words_of(texts: Sequence[str]) -> list[str]:
    """The distinct lowercase alphabetic words of ``texts``, sorted: a vocabulary for edit_words (11)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string.")
    return sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})


# ------------------------------------------------------------------------------------------------ ROC/AUC
def _as_scores(scores: Tensor | Sequence[float], name: str) -> Tensor:
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if len(s) == 0 or not torch.isfinite(s).all():
        raise ValueError(f"{name} must be a non-empty list of finite detector scores, got {len(s)} values "
                         "(some not finite?).")
    return s


def detection_auc(machine_scores: Tensor | Sequence[float], human_scores: Tensor | Sequence[float]) -> float:
    """AUC of "higher score => machine": P(s_machine > s_human) + P(tie)/2, sklearn's roc_auc_score (11).

    The Mann-Whitney statistic of :func:`aigc_lib.safety.privacy.membership_auc`, applied to minus the scores.
    """
    m, h = _as_scores(machine_scores, "machine_scores"), _as_scores(human_scores, "human_scores")
    return membership_auc(-m, -h)


def detection_roc(machine_scores: Tensor | Sequence[float],
                  human_scores: Tensor | Sequence[float]) -> dict[str, Tensor]:
    """ROC points of "machine iff score >= tau" for every tau: ``fpr``, ``tpr``, ``thresholds`` (11)."""
    m, h = _as_scores(machine_scores, "machine_scores"), _as_scores(human_scores, "human_scores")
    roc = membership_roc(-m, -h)
    return {"fpr": roc["fpr"], "tpr": roc["tpr"], "thresholds": -roc["thresholds"]}


# ------------------------------------------------------------------------------------------------- images
def radial_power_spectrum(images: Tensor, eps: float = 1e-8) -> Tensor:
    """Azimuthally averaged log power spectrum of each image (N, R), R = min(H, W) // 2 + 1 radii (11).

    ``log(|FFT2(x - mean)|^2 + eps)`` averaged over channels and over the frequencies (f_y, f_x) whose radius
    sqrt(f_y^2 + f_x^2), in cycles per image and rounded, is r; r = 0 is the (removed) mean, r = H/2 Nyquist.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or min(images.shape[-2:]) < 4:
        raise ValueError(f"images must be a (N, C, H, W) tensor with H, W >= 4, got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}.")
    x = images.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    H, W = x.shape[-2:]
    power = torch.fft.fftshift(torch.fft.fft2(x).abs() ** 2, dim=(-2, -1)).mean(1)  # (N, H, W)
    fy = torch.arange(H, dtype=torch.float64) - H // 2
    fx = torch.arange(W, dtype=torch.float64) - W // 2
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).round().long()  # (H, W)
    R = min(H, W) // 2 + 1
    logp = (power + eps).log().flatten(1)  # (N, H*W)
    flat_r = radius.flatten()
    keep = flat_r < R
    sums = torch.zeros(len(x), R, dtype=torch.float64).index_add_(1, flat_r[keep], logp[:, keep])
    counts = torch.bincount(flat_r[keep], minlength=R).double()
    return (sums / counts).float()


class RealFakeDetector(nn.Module):
    """A small CNN that outputs one logit per image, > 0 meaning "generated" (11).

    Three stride-2 3x3 convolutions (no pooling before them, so pixel-level periodic artefacts survive), a
    global average pool and a linear layer: a few thousand parameters for 1 x 32 x 32 digits.
    """

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        if channels < 1 or width < 1:
            raise ValueError(f"channels and width must be positive, got {channels} and {width}.")
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N,)
        return self.net(x)[:, 0]


def _detector_step(trainer: Any, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    x, y = batch
    logits = trainer.model(x)  # (B,)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    trainer.backward(loss)
    trainer.optimizer_step()
    acc = ((logits > 0).float() == y).float().mean()
    return {"loss": loss.detach(), "acc": acc.detach()}


def train_detector(real: Tensor, fake: Tensor, steps: int = 200, *, lr: float = 2e-3, batch_size: int = 64,
                   width: int = 16, seed: int = 0, device: str | None = None,
                   progress: bool = False) -> tuple[RealFakeDetector, dict[str, list]]:
    """Train a :class:`RealFakeDetector` on ``real`` (label 0) vs ``fake`` (label 1) images (Trainer) (11).

    Adam at ``lr`` (pass ``lr * LEARN`` for a control run that learns nothing); classes are balanced by
    truncating the larger set. Returns the detector in eval mode and the trainer's history.
    """
    for name, x in (("real", real), ("fake", fake)):
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"{name} must be a (N, C, H, W) image tensor in [-1, 1], got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}.")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake images must have the same (C, H, W), got {tuple(real.shape[1:])} "
                         f"and {tuple(fake.shape[1:])}.")
    n = min(len(real), len(fake))
    if n < 2 or batch_size > 2 * n:
        raise ValueError(f"need at least batch_size/2 = {batch_size / 2:.0f} images of each kind, got {n}.")
    if lr < 0:
        raise ValueError(f"lr must be >= 0 (0: a control run that does not learn), got {lr!r}.")
    torch.manual_seed(seed)
    model = RealFakeDetector(real.shape[1], width)
    x = torch.cat([real[:n], fake[:n]]).float()
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    config = TrainConfig(max_steps=steps, log_every=max(1, steps // 10), device=None if device is None else
                         str(device), progress=progress, precision="fp32")
    trainer = Trainer(model, optimizer, _detector_step, TensorLoader(x, y, batch_size=batch_size, seed=seed),
                      config)
    history = trainer.fit()
    return model.cpu().eval(), history


@torch.no_grad()
def detector_scores(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """The detector's logit for each image (N,), higher = more likely generated, on the CPU (11)."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError("images must be a (N, C, H, W) tensor in [-1, 1].")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(chunk.to(device).float()).cpu() for chunk in images.split(batch_size)])
    finally:
        model.train(was_training)

