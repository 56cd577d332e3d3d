"""The green-list watermark of Kirchenbauer et al. (2023), "A Watermark for Large Language Models", ICML
(chapter 11).

At every step the previous token seeds a random generator; a seeded permutation of the vocabulary splits it
into a *green list* of ``gamma * |V|`` tokens and a red list, and ``delta`` is added to the green logits
(Algorithm 2, "soft red list"). Text written that way holds more green tokens than chance allows; a detector
that knows the key recounts them and runs a one-proportion z-test (Eq. 2):

    z = (|s|_G - gamma T) / sqrt(T gamma (1 - gamma))

The green-list computation reproduces transformers' ``WatermarkLogitsProcessor`` bit for bit (same hash of the
previous token with ``hashing_key``, same ``torch.Generator`` seeding and ``torch.randperm``, same
``int(vocab_size * gamma)`` rounding), and the detector counts exactly as its ``WatermarkDetector`` does, so a
text watermarked by either one is scored the same by both (``tests/test_watermark.py`` checks it).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor
from transformers import LogitsProcessor

__all__ = [
    "DEFAULT_HASHING_KEY", "SEEDING_SCHEMES", "GreenListDetector", "GreenListLogitsProcessor",
    "GreenListWatermark", "WatermarkScore", "green_list", "greenlist_size", "watermark_p_value",
    "watermark_z_score",
]

DEFAULT_HASHING_KEY = 15485863  # the millionth prime, transformers' and the paper repo's default key
SEEDING_SCHEMES = ("lefthash", "selfhash")
_TABLE_SIZE = 1_000_003  # selfhash's fixed random table (transformers' ``table_size``)


@dataclass(frozen=True)
class GreenListWatermark:
    """Settings of the green-list watermark (Kirchenbauer et al., 2023, Sec. 3; notebook 11).

    ``gamma`` is the green-list fraction, ``delta`` the bias added to green logits, ``hashing_key`` the secret
    key, ``context_width`` how many previous tokens seed the green list. ``"lefthash"`` seeds from the
    previous token (Algorithm 2); ``"selfhash"`` also from the candidate token itself (Algorithm 3, slower).
    """

    gamma: float = 0.25
    delta: float = 2.0
    hashing_key: int = DEFAULT_HASHING_KEY
    context_width: int = 1
    seeding_scheme: str = "lefthash"

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma is the green-list fraction and must lie strictly between 0 and 1, got "
                             f"{self.gamma}; the paper uses 0.25 or 0.5.")
        if self.delta < 0:
            raise ValueError(f"delta is the bias added to green logits and must be >= 0, got {self.delta}; "
                             "0 turns the watermark off, 2 is the paper's default.")
        if not isinstance(self.context_width, int) or self.context_width < 1:
            raise ValueError(f"context_width must be an int >= 1 (previous tokens that seed the green list), "
                             f"got {self.context_width!r}.")
        if self.seeding_scheme not in SEEDING_SCHEMES:
            raise ValueError(f"seeding_scheme must be one of {SEEDING_SCHEMES}, got {self.seeding_scheme!r}.")
        if not isinstance(self.hashing_key, int) or self.hashing_key <= 0:
            raise ValueError(f"hashing_key must be a positive int, got {self.hashing_key!r}.")

    def to_transformers(self) -> dict[str, object]:
        """These settings as keyword arguments of transformers' ``WatermarkingConfig``."""
        return {"greenlist_ratio": self.gamma, "bias": self.delta, "hashing_key": self.hashing_key,
                "seeding_scheme": self.seeding_scheme, "context_width": self.context_width}


def greenlist_size(vocab_size: int, gamma: float) -> int:
    """Green-list length ``int(gamma * |V|)``, rounded down as in transformers (notebook 11)."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2 to split it into green and red tokens, got {vocab_size}.")
    return int(vocab_size * gamma)


def _fixed_table(hashing_key: int, device: torch.device | str = "cpu") -> Tensor:
    """selfhash's random table: a permutation of 0..1_000_002 drawn from a generator seeded with the key."""
    rng = torch.Generator(device=device)
    rng.manual_seed(hashing_key)
    return torch.randperm(_TABLE_SIZE, generator=rng, device=device)


def _seed(context: Tensor, wm: GreenListWatermark, table: Tensor | None) -> int:
    """The generator seed for a context: a hash of its last token(s) with ``hashing_key``."""
    context = context[-wm.context_width:]
    if wm.seeding_scheme == "selfhash":
        # min over the window of key * T[x_i] * T[x_last], in int64 that wraps around as transformers' does
        a = table[context % _TABLE_SIZE] + 1
        b = table[context[-1] % _TABLE_SIZE] + 1
        seed = (wm.hashing_key * a * b).min().item()
    else:
        seed = wm.hashing_key * int(context[-1])  # lefthash: only the previous token, whatever context_width
    return seed % (2**64 - 1)


def green_list(context: Tensor, vocab_size: int, watermark: GreenListWatermark, *,
               table: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The green token ids after ``context`` (1-D): the first ``int(gamma |V|)`` of a vocabulary permutation
    seeded by the hashed context (Kirchenbauer et al., 2023, Algorithm 2 steps 2-3; notebook 11)."""
    if context.dim() != 1 or context.numel() == 0:
        raise ValueError(f"context must be a non-empty 1-D tensor of token ids, got shape "
                         f"{tuple(context.shape)}.")
    if watermark.seeding_scheme == "selfhash" and table is None:
        table = _fixed_table(watermark.hashing_key, context.device)
    rng = generator if generator is not None else torch.Generator(device=context.device)
    rng.manual_seed(_seed(context, watermark, table))
    permutation = torch.randperm(vocab_size, device=context.device, generator=rng)  # (V,)
    return permutation[:greenlist_size(vocab_size, watermark.gamma)]


class GreenListLogitsProcessor(LogitsProcessor):
    """Adds ``delta`` to the green logits of every row (Kirchenbauer et al., 2023, Algorithm 2; notebook 11).

    Works in ``model.generate(..., logits_processor=LogitsProcessorList([GreenListLogitsProcessor(wm, V)]))``
    and gives the same scores as transformers' ``WatermarkLogitsProcessor`` with ``wm.to_transformers()``.
    """

    def __init__(self, watermark: GreenListWatermark, vocab_size: int, device: torch.device | str = "cpu"):
        greenlist_size(vocab_size, watermark.gamma)  # validates vocab_size
        if watermark.seeding_scheme == "selfhash" and vocab_size < 40:
            raise ValueError(f"selfhash tries the 40 best candidates, so it needs vocab_size >= 40, got "
                             f"{vocab_size}; use seeding_scheme='lefthash'.")
        self.watermark, self.vocab_size = watermark, vocab_size
        self.rng = torch.Generator(device=device)
        selfhash = watermark.seeding_scheme == "selfhash"
        self.table = _fixed_table(watermark.hashing_key, device) if selfhash else None

    def green_list(self, context: Tensor) -> Tensor:
        """The green ids after ``context`` (1-D token ids)."""
        return green_list(context, self.vocab_size, self.watermark, table=self.table, generator=self.rng)

    def _selfhash_green(self, context: Tensor, scores: Tensor) -> Tensor:
        # Algorithm 3: a candidate k is green when k is in the green list seeded by (context, k); only the
        # 40 highest-scoring candidates are tried, as in the paper's repo and transformers
        order = scores.sort(dim=-1, descending=True).indices  # (V,)
        green = [k for k in order[:40] if k in self.green_list(torch.cat([context, k[None]]))]
        return torch.tensor(green, dtype=torch.long, device=context.device)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        """``scores`` (B, V) with ``delta`` added to each row's green tokens; unchanged while the sequences
        are shorter than ``context_width``."""
        if input_ids.shape[-1] < self.watermark.context_width:
            return scores
        out = scores.clone()  # (B, V)
        for row, context in enumerate(input_ids):
            if self.watermark.seeding_scheme == "selfhash":
                green = self._selfhash_green(context, scores[row])
            else:
                green = self.green_list(context)
            # Algorithm 2 step 4: l_k <- l_k + delta for k in the green list G
            out[row, green] = out[row, green] + self.watermark.delta
        return out


def watermark_z_score(num_green: float, num_scored: float, gamma: float) -> float:
    """z = (G - gamma T) / sqrt(T gamma (1 - gamma)) (Kirchenbauer et al., 2023, Eq. 2; notebook 11)."""
    if num_scored <= 0:
        raise ValueError(f"the z-score needs at least one scored token, got T = {num_scored}.")
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}.")
    return (num_green - gamma * num_scored) / math.sqrt(num_scored * gamma * (1 - gamma))


def watermark_p_value(z: float) -> float:
    """One-sided normal p-value P(Z > z) = erfc(z / sqrt 2) / 2 of a watermark z-score (notebook 11)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class WatermarkScore:
    """One sequence's detection result: G green among T scored tokens, z, its p-value, and z > threshold."""

    num_tokens_scored: int
    num_green_tokens: int
    green_fraction: float
    z_score: float
    p_value: float
    prediction: bool


class GreenListDetector:
    """Counts green tokens and tests for the watermark (Kirchenbauer et al., 2023, Sec. 4; notebook 11).

    Scores every token after the first ``context_width`` (``selfhash``: from the ``context_width``-th on),
    each with the window of ``context_width + 1`` tokens that ends at it (``selfhash``: ``context_width``), as
    transformers' ``WatermarkDetector`` does. With ``ignore_repeated_ngrams`` each distinct window counts
    once, so a repeated phrase cannot inflate the score. A leading ``bos_token_id`` is dropped (pass the
    model's BOS id to match ``WatermarkDetector(model_config=...)``). ``z_threshold`` defaults to the paper's
    4; transformers' ``WatermarkDetector.__call__`` defaults to 3.
    """

    def __init__(self, watermark: GreenListWatermark, vocab_size: int, *, z_threshold: float = 4.0,
                 ignore_repeated_ngrams: bool = False, bos_token_id: int | None = None,
                 cache_size: int = 4096):
        greenlist_size(vocab_size, watermark.gamma)  # validates vocab_size
        self.watermark, self.vocab_size, self.z_threshold = watermark, vocab_size, z_threshold
        self.ignore_repeated_ngrams, self.bos_token_id = ignore_repeated_ngrams, bos_token_id
        self.table = _fixed_table(watermark.hashing_key) if watermark.seeding_scheme == "selfhash" else None
        self._is_green = lru_cache(maxsize=cache_size)(self._window_is_green)

    def _window_is_green(self, window: tuple[int, ...]) -> bool:
        selfhash = self.watermark.seeding_scheme == "selfhash"
        context = torch.tensor(window if selfhash else window[:-1], dtype=torch.long)
        green = green_list(context, self.vocab_size, self.watermark, table=self.table)
        return window[-1] in set(green.tolist())

    def count_green(self, token_ids: Tensor | list[int]) -> tuple[int, int]:
        """(G, T) for one sequence of token ids: green tokens and scored tokens."""
        ids = [int(t) for t in token_ids]
        n = self.watermark.context_width + (0 if self.watermark.seeding_scheme == "selfhash" else 1)
        windows = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))  # window -> occurrences
        if self.ignore_repeated_ngrams:
            return sum(self._is_green(w) for w in windows), len(windows)
        return sum(c * self._is_green(w) for w, c in windows.items()), sum(windows.values())

    def score(self, token_ids: Tensor | list[int]) -> WatermarkScore:
        """Detection result for one sequence (1-D token ids, prompt removed if possible)."""
        ids = [int(t) for t in token_ids]
        if ids and self.bos_token_id is not None and ids[0] == self.bos_token_id:
            ids = ids[1:]
        if len(ids) - self.watermark.context_width < 1:
            raise ValueError(f"the text has {len(ids)} token(s) after any BOS, but detection needs more than "
                             f"context_width={self.watermark.context_width} to score one; pass a longer text "
                             "(the paper scores about 200 tokens).")
        green, scored = self.count_green(ids)
        z = watermark_z_score(green, scored, self.watermark.gamma)
        return WatermarkScore(scored, green, green / scored, z, watermark_p_value(z), z > self.z_threshold)

    def __call__(self, input_ids: Tensor) -> list[WatermarkScore]:
        """One :class:`WatermarkScore` per row of ``input_ids`` (B, T) or for a 1-D sequence."""
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens) or (tokens,), got shape "
                             f"{tuple(input_ids.shape)}.")
        return [self.score(row) for row in input_ids]
