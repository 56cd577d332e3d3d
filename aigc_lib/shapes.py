"""The captioned-shapes world of chapters 08 and 09: its grammar (colours, shapes, positions, captions) and drawing.

A caption is ``"{a|an} {colour} {shape} {position phrase}"``, e.g. "a red circle at the top left"; every image of
:func:`aigc_lib.data.make_shapes` has one. :func:`caption_targets` parses captions back into the attribute
indices a judge predicts, so prompt accuracy (the share of generated images whose colour, shape and position
match the prompt) can be measured; :func:`all_captions` and :func:`prompt_set` list what the grammar can say.
Shapes are drawn from exact signed distance functions, with a one-pixel anti-aliased edge.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["COLORS", "POSITIONS", "SHAPES", "SHAPE_ATTRIBUTES", "all_captions", "caption_targets", "draw_shapes",
           "prompt_set", "shape_caption"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40), "green": (40, 190, 60), "blue": (50, 100, 245),
    "yellow": (240, 220, 40), "purple": (165, 60, 225), "orange": (250, 140, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
POSITIONS: dict[str, str] = {  # a 3x3 grid in row-major order -> the phrase captions use
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}
SHAPE_ATTRIBUTES: dict[str, tuple[str, ...]] = {  # attribute -> names, in the order of its label indices
    "color": tuple(COLORS), "shape": SHAPES, "position": tuple(POSITIONS)}


def shape_caption(color: str, shape: str, position: str) -> str:
    """The caption make_shapes writes, e.g. 'a red circle at the top left' (notebook 08)."""
    return f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape} {POSITIONS[position]}"


def _box(ax: Tensor, ay: Tensor, half_w: float, half_h: float) -> Tensor:
    qx, qy = ax - half_w, ay - half_h
    return torch.hypot(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def _star(x: Tensor, y: Tensor, inner: float = 0.45) -> Tensor:
    """Exact distance to a 5-pointed star, tip up (Inigo Quilez's sdStar5, with y pointing down)."""
    k1x, k1y = 0.809016994375, -0.587785252292
    px, py = x.abs(), -y
    for kx in (k1x, -k1x):  # fold the plane into one tenth of the star
        d = 2 * (kx * px + k1y * py).clamp(min=0)
        px, py = px - d * kx, py - d * k1y
    px, py = px.abs(), py - 1
    bax, bay = -inner * k1y, inner * k1x - 1
    h = ((px * bax + py * bay) / (bax**2 + bay**2)).clamp(0, 1)
    return torch.hypot(px - bax * h, py - bay * h) * torch.sign(py * bax - px * bay)


def _shape_sdf(shape: str, x: Tensor, y: Tensor) -> Tensor:
    """Signed distance to the shape's edge in units of its radius (negative inside); y points down."""
    ax, ay = x.abs(), y.abs()
    if shape == "circle":
        return torch.hypot(x, y) - 0.9
    if shape == "square":
        return _box(ax, ay, 0.8, 0.8)
    if shape == "diamond":
        return (ax + ay - 1) / math.sqrt(2)
    if shape == "cross":
        return torch.minimum(_box(ax, ay, 1, 0.3), _box(ax, ay, 0.3, 1))
    if shape == "triangle":  # equilateral, apex up: the largest of the three edges' signed distances
        y = y - 0.2
        return torch.maximum(y - 0.6, 0.866 * ax - 0.5 * y - 0.6)
    return _star(x / 1.1, y / 1.1 - 0.05) * 1.1


def draw_shapes(shape_ids: Tensor, color_ids: Tensor, position_ids: Tensor, jitter: Tensor, size: int) -> Tensor:
    """Images (N, 3, size, size) in [0, 1]: shape SHAPES[s] in colour COLORS[c] in grid cell p (notebook 08).

    ``jitter`` (N, 3) in [-1, 1] moves the radius by up to 10% and the centre by up to 6% of a cell.
    """
    n = len(shape_ids)
    cell = size / 3
    radius = cell * 0.42 * (1 + 0.1 * jitter[:, 0])  # (N,) in pixels
    cx = ((position_ids % 3).float() + 0.5 + 0.06 * jitter[:, 1]) * cell  # (N,) centre, pixels
    cy = ((position_ids // 3).float() + 0.5 + 0.06 * jitter[:, 2]) * cell
    palette = torch.tensor(list(COLORS.values()), dtype=torch.float32) / 255  # (colours, 3)
    u = torch.arange(size) + 0.5  # pixel centres
    images = torch.zeros(n, 3, size, size)
    for k in shape_ids.unique().tolist():
        idx = (shape_ids == k).nonzero().squeeze(1)
        r = radius[idx, None, None]  # (n_k, 1, 1)
        x = (u - cx[idx, None]).unsqueeze(1) / r  # (n_k, 1, S)
        y = (u - cy[idx, None]).unsqueeze(2) / r  # (n_k, S, 1)
        coverage = (0.5 - _shape_sdf(SHAPES[k], x, y) * r).clamp(0, 1)  # (n_k, S, S), a 1-pixel anti-aliased edge
        images[idx] = coverage[:, None] * palette[color_ids[idx], :, None, None]
    return images


def caption_targets(captions: Sequence[str]) -> dict[str, Tensor]:
    """Parse 'a red circle at the top left' back into colour/shape/position indices (notebook 08)."""
    colors, phrases = list(COLORS), {phrase: i for i, phrase in enumerate(POSITIONS.values())}
    out: dict[str, list[int]] = {"color": [], "shape": [], "position": []}
    for caption in captions:
        words = caption.strip().split()
        if len(words) < 4 or words[1] not in colors or words[2] not in SHAPES or " ".join(words[3:]) not in phrases:
            raise ValueError(f"{caption!r} is not a shapes caption like {shape_caption('red', 'circle', 'top left')!r}.")
        out["color"].append(colors.index(words[1]))
        out["shape"].append(SHAPES.index(words[2]))
        out["position"].append(phrases[" ".join(words[3:])])
    return {k: torch.tensor(v) for k, v in out.items()}


def all_captions(shapes: Sequence[str] = SHAPES) -> list[str]:
    """Every caption the grammar can write for these shapes: colours x shapes x positions (notebook 08)."""
    return [shape_caption(c, s, p) for s in shapes for c in COLORS for p in POSITIONS]


def prompt_set(n: int, shapes: Sequence[str] = SHAPES, seed: int = 0) -> list[str]:
    """n prompts drawn evenly (round robin over a seeded shuffle) from all_captions(shapes) (notebook 08)."""
    captions = all_captions(shapes)
    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(seed)).tolist()
    return [captions[order[i % len(order)]] for i in range(n)]
