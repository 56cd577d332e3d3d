"""Bias in generations (notebook 12): skewed training data, the colour shares a model draws, and how skewed they are.

:func:`skewed_shapes` builds a captioned-shapes set in which one shape has a chosen colour distribution (e.g. red
80% of the time) and, optionally, captions that leave the colour out ("a circle at the top left"), so the model
must pick the colour itself. :func:`colour_shares` reads the colours a judge sees in generated images,
:func:`skew` is the total variation distance between two distributions, and :func:`share_ci` a bootstrap interval
for one colour's share.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aigc_lib.data import ImageData
from aigc_lib.metrics.stats import bootstrap_ci
from aigc_lib.shapes import COLORS, POSITIONS, SHAPES, draw_shapes, shape_caption

__all__ = ["colour_shares", "colourless_caption", "share_ci", "shares_of", "skew", "skewed_shapes"]


def colourless_caption(shape: str, position: str) -> str:
    """A caption with the colour left out, e.g. 'a circle at the top left' (notebook 12)."""
    if shape not in SHAPES or position not in POSITIONS:
        raise ValueError(f"unknown shape {shape!r} or position {position!r}: use names from SHAPES and POSITIONS.")
    return f"a {shape} {POSITIONS[position]}"


def _distribution(probs: Mapping[str, float] | Sequence[float] | Tensor) -> Tensor:
    if isinstance(probs, Mapping):
        unknown = set(probs) - set(COLORS)
        if unknown:
            raise ValueError(f"unknown colours {sorted(unknown)}: use names from {list(COLORS)}.")
        probs = [float(probs.get(c, 0.0)) for c in COLORS]
    p = torch.as_tensor(probs, dtype=torch.float64).flatten()
    if len(p) != len(COLORS) or (p < 0).any() or not torch.isclose(p.sum(), torch.tensor(1.0, dtype=p.dtype),
                                                                      atol=1e-6):
        raise ValueError(f"a colour distribution needs {len(COLORS)} non-negative probabilities summing to 1 "
                         f"(order {list(COLORS)}), got {p.tolist()}.")
    return p


def skewed_shapes(n: int, shape: str, colour_probs: Mapping[str, float] | Sequence[float], *, size: int = 32,
                  name_colour: bool = False, seed: int = 0) -> ImageData:
    """n images of one shape whose colours follow ``colour_probs`` (exactly, up to rounding), positions uniform;
    captions name the colour only when ``name_colour`` (notebook 12)."""
    if n < 1 or shape not in SHAPES:
        raise ValueError(f"need n >= 1 and a shape from {SHAPES}, got n={n}, shape={shape!r}.")
    p = _distribution(colour_probs)
    counts = torch.floor(p * n).long()
    counts[int(p.argmax())] += n - int(counts.sum())  # the rounding remainder goes to the most common colour
    g = torch.Generator().manual_seed(seed)
    colour = torch.repeat_interleave(torch.arange(len(COLORS)), counts)[torch.randperm(n, generator=g)]
    where = torch.randint(len(POSITIONS), (n,), generator=g)
    jitter = torch.rand(n, 3, generator=g) * 2 - 1
    shape_ids = torch.full((n,), SHAPES.index(shape))
    images = draw_shapes(shape_ids, colour, where, jitter, size) * 2 - 1
    colours, positions = list(COLORS), list(POSITIONS)
    captions = [shape_caption(colours[c], shape, positions[w]) if name_colour
                else colourless_caption(shape, positions[w]) for c, w in zip(colour.tolist(), where.tolist())]
    return ImageData(images, shape_ids, list(SHAPES), "shapes", captions,
                     {"color": colour, "shape": shape_ids, "position": where})


def shares_of(labels: Tensor | Sequence[int], classes: int = len(COLORS)) -> Tensor:
    """Share of each class (classes,) among integer labels; sums to 1 (notebook 12)."""
    labels = torch.as_tensor(labels).long().flatten()
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"need a non-empty list of labels in 0..{classes - 1}, got {labels.tolist()[:10]}.")
    return torch.bincount(labels, minlength=classes).double() / len(labels)


def colour_shares(images: Tensor, judge: Any) -> dict[str, float]:
    """Share of images the judge's colour head reads as each colour, {colour: share}, summing to 1 (notebook 12)."""
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"need a non-empty batch of images (N, 3, H, W), got shape {tuple(images.shape)}.")
    shares = shares_of(judge.predict(images, "color"))
    return dict(zip(COLORS, shares.tolist(), strict=True))


def skew(shares: Mapping[str, float] | Sequence[float] | Tensor,
         target: Mapping[str, float] | Sequence[float] | Tensor) -> float:
    """Total variation distance 0.5 * sum |p - q| between two colour distributions, in [0, 1] (notebook 12)."""
    return 0.5 * (_distribution(shares) - _distribution(target)).abs().sum().item()


def share_ci(labels: Tensor | Sequence[int], colour: str, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Bootstrap 95% interval of one colour's share among predicted colour labels (notebook 12)."""
    if colour not in COLORS:
        raise ValueError(f"unknown colour {colour!r}: use one of {list(COLORS)}.")
    hits = (torch.as_tensor(labels).long().flatten() == list(COLORS).index(colour)).double().numpy()
    if len(hits) == 0:
        raise ValueError("need at least one label.")
    return bootstrap_ci(hits, statistic=np.mean, n_boot=n_boot, seed=seed)
