"""Image sources: MNIST-style digits (online or rendered from fonts), torchvision sets, captioned shapes and
your own image folders, all as :class:`ImageData` in [-1, 1] (notebooks 02, 03 and 08).

Online sources (torchvision MNIST / Fashion-MNIST / CIFAR-10) are used when reachable or cached in
``data/cache``; the offline ones are digits rendered from matplotlib's fonts, scikit-learn's bundled 8x8 digits
and captioned synthetic shapes. Every random choice uses a local ``torch.Generator``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aigc_lib import runtime
from aigc_lib.data.common import DATA_DIR, DatasetUnavailableError
from aigc_lib.shapes import COLORS, POSITIONS, SHAPES, draw_shapes, shape_caption

__all__ = ["DIGIT_FONTS", "IMAGE_DATASETS", "IMAGE_EXTENSIONS", "ImageData", "load_digits", "load_image_dataset",
           "load_image_folder", "make_font_digits", "make_shapes"]

IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10", "font-digits", "sklearn-digits", "shapes")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageData:
    """Images in [-1, 1] with labels and class names; captioned sources add captions and attributes."""

    images: Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: Tensor  # (N,) int64, indices into classes
    classes: list[str]
    source: str
    captions: list[str] | None = None
    attributes: dict[str, Tensor] | None = None  # name -> (N,) int64

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise ValueError(f"images must be (N, C, H, W) with N = len(labels); got "
                             f"{tuple(self.images.shape)} and {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Tensor) -> ImageData:
        """The items at ``index`` (a 1-D long tensor), captions and attributes included."""
        captions = None if self.captions is None else [self.captions[i] for i in index.tolist()]
        attributes = None if self.attributes is None else {k: v[index] for k, v in self.attributes.items()}
        return replace(self, images=self.images[index], labels=self.labels[index], captions=captions,
                       attributes=attributes)


def _announce(name: str, data: ImageData, how: str) -> ImageData:
    kind = "online" if data.source in ("mnist", "fashion-mnist", "cifar10") else "offline"
    c, h, w = data.images.shape[1:]
    print(f"[aigc.data] {name}: {kind} source '{data.source}' ({how}), {len(data)} images {c}x{h}x{w}")
    return data


# --------------------------------------------------------------------------------------------- digits
DIGIT_FONTS = (  # fonts inside matplotlib whose digits look like digits (not cmmi10's old-style figures)
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf",
)


def _centered_glyph(font: Any, text: str, canvas: int) -> Tensor:
    """One glyph scaled into a 0.69 * canvas box (MNIST: 20 of 28 px), centred by its centre of mass."""
    from PIL import Image, ImageDraw

    big = Image.new("L", (4 * canvas, 4 * canvas))
    ImageDraw.Draw(big).text((2 * canvas, 2 * canvas), text, fill=255, font=font, anchor="mm")
    glyph = big.crop(big.getbbox())
    scale = 0.69 * canvas / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.LANCZOS)
    x = torch.from_numpy(np.asarray(glyph, dtype=np.float32) / 255)  # (h, w) in [0, 1]
    h, w = x.shape
    cy = float((x.sum(1) * torch.arange(h)).sum() / x.sum())
    cx = float((x.sum(0) * torch.arange(w)).sum() / x.sum())
    top = min(max(round(canvas / 2 - cy), 0), canvas - h)
    left = min(max(round(canvas / 2 - cx), 0), canvas - w)
    out = torch.zeros(canvas, canvas)
    out[top:top + h, left:left + w] = x
    return out


@lru_cache(maxsize=4)
def _glyph_bank(size: int, canvas: int = 64) -> Tensor:
    """Every (font, digit) glyph in three stroke widths at 2 * size px: (3 * fonts * 10, 1, 2s, 2s)."""
    import matplotlib
    from PIL import ImageFont

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    glyphs = [_centered_glyph(ImageFont.truetype(str(font_dir / name), 2 * canvas), str(digit), canvas)
              for name in DIGIT_FONTS for digit in range(10)]
    normal = torch.stack(glyphs)[:, None]  # (fonts * 10, 1, canvas, canvas), index = font * 10 + digit
    bank = torch.cat([normal, F.max_pool2d(normal, 3, 1, 1), F.max_pool2d(normal, 5, 1, 2)])  # thicker
    return F.interpolate(bank, size=(2 * size, 2 * size), mode="bilinear", antialias=True)


def _random_affines(n: int, generator: torch.Generator) -> Tensor:
    """(n, 2, 3) inverse warps for grid_sample: rotation +-12 deg, scale 0.75-1.05, shear, shift +-10%."""
    u = torch.rand(n, 5, generator=generator) * 2 - 1  # uniform in [-1, 1]
    angle, scale, shear = u[:, 0] * math.radians(12), 0.9 + 0.15 * u[:, 1], 0.15 * u[:, 2]
    cos, sin = angle.cos(), angle.sin()
    # output -> input coordinates: (rotation @ shear) / scale, then a shift (the image side spans [-1, 1])
    row0 = torch.stack([cos, cos * shear - sin, 0.2 * u[:, 3] * scale], 1) / scale[:, None]
    row1 = torch.stack([sin, sin * shear + cos, 0.2 * u[:, 4] * scale], 1) / scale[:, None]
    return torch.stack([row0, row1], 1)


def make_font_digits(n: int = 6000, size: int = 28, seed: int = 0) -> ImageData:
    """MNIST-style white digits on black: font glyphs with random affine jitter and strokes (notebook 02)."""
    bank = _glyph_bank(size)  # a 2x bank sampled at 1x keeps the edges smooth
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]  # balanced classes
    glyph = torch.randint(0, len(bank) // 10, (n,), generator=g) * 10 + labels  # a (stroke, font) each
    grid = F.affine_grid(_random_affines(n, g), [n, 1, size, size], align_corners=False)  # (N, s, s, 2)
    images = F.grid_sample(bank[glyph], grid, align_corners=False).clamp(0, 1)  # (N, 1, s, s)
    return ImageData(images * 2 - 1, labels, [str(d) for d in range(10)], "font-digits")


def _sklearn_digits(n: int, size: int | None) -> ImageData:
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()  # 1797 images, 8x8, values 0..16, bundled with scikit-learn
    x = torch.as_tensor(bunch.images[:n], dtype=torch.float32)[:, None] / 16  # (N, 1, 8, 8)
    if size and size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.as_tensor(bunch.target[:n], dtype=torch.long)
    return ImageData(x * 2 - 1, labels, [str(d) for d in range(10)], "sklearn-digits")


def _torchvision(name: str, n: int | None, size: int | None, root: Path,
                 train: bool) -> tuple[ImageData, str]:
    """MNIST / Fashion-MNIST / CIFAR-10 from the cache in ``root``, downloading it there when online."""
    import torchvision

    class_name = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}[name]
    cls = getattr(torchvision.datasets, class_name)
    try:
        ds, how = cls(str(root), train=train), f"torchvision {class_name}, cached in {root}"
    except RuntimeError:  # torchvision: "Dataset not found. You can use download=True to download it"
        if not runtime.is_online():
            offline = "source='font-digits'" if name == "mnist" else "'font-digits' or 'shapes'"
            raise DatasetUnavailableError(
                f"{name} is not cached in {root} and this machine is offline (or AIGC_OFFLINE/HF_HUB_OFFLINE "
                f"is set): use {offline} instead, or connect to the internet once to download it."
            ) from None
        ds = cls(str(root), train=train, download=True)
        how = f"torchvision {class_name}, downloaded to {root}"
    x = torch.as_tensor(ds.data[:n])  # MNIST: (N, H, W) uint8; CIFAR-10: (N, H, W, 3) uint8
    x = (x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)).float() / 255  # (N, C, H, W)
    if size and size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    classes = [str(d) for d in range(10)] if name == "mnist" else list(ds.classes)
    return ImageData(x * 2 - 1, torch.as_tensor(ds.targets[:n]).long(), classes, name), how


def _load(name: str, n: int | None, size: int | None, seed: int, root: Path,
          train: bool) -> tuple[ImageData, str]:
    if name == "font-digits":
        return make_font_digits(n or 6000, size or 28, seed), "rendered from matplotlib's fonts"
    if name == "sklearn-digits":
        return _sklearn_digits(n or 1797, size), "scikit-learn's bundled 8x8 digits"
    if name == "shapes":
        return make_shapes(n or 10000, size or 32, seed=seed), "captioned synthetic shapes"
    return _torchvision(name, n, size, root, train)


def load_image_dataset(name: str, n: int | None = None, size: int | None = None, seed: int = 0,
                       root: str | os.PathLike | None = None, train: bool = True) -> ImageData:
    """An image dataset by name: online (torchvision, cached in data/cache) or offline (notebook 03)."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}: choose one of {', '.join(IMAGE_DATASETS)}.")
    return _announce(name, *_load(name, n, size, seed, Path(root) if root else DATA_DIR / "cache", train))


def load_digits(n: int = 6000, size: int = 28, source: str = "auto", seed: int = 0,
                root: str | os.PathLike | None = None) -> ImageData:
    """Digits: MNIST when online or cached ("auto"), else digits rendered from fonts (notebook 02)."""
    sources = ("auto", "mnist", "font-digits", "sklearn-digits")
    if source not in sources:
        raise ValueError(f"unknown digits source {source!r}: choose one of {', '.join(sources)}.")
    root = Path(root) if root else DATA_DIR / "cache"
    if source != "auto":
        return _announce("digits", *_load(source, n, size, seed, root, train=True))
    try:
        return _announce("digits", *_torchvision("mnist", n, size, root, train=True))
    except (DatasetUnavailableError, OSError, RuntimeError) as error:  # offline, failed download, ...
        data, how = _load("font-digits", n, size, seed, root, train=True)
        return _announce("digits", data, f"{how}; MNIST unavailable: {str(error).split(':')[0]}")


# --------------------------------------------------------------------------------------------- shapes
def _pick(kind: str, chosen: Sequence[str] | None, valid: Sequence[str]) -> list[str]:
    chosen = list(valid) if chosen is None else list(chosen)
    unknown = [c for c in chosen if c not in valid]
    if unknown or not chosen:
        raise ValueError(f"unknown or no {kind} {unknown or chosen}: choose from {', '.join(valid)}.")
    return chosen


def make_shapes(n: int = 10000, size: int = 32, colors: Sequence[str] | None = None,
                shapes: Sequence[str] | None = None, positions: Sequence[str] | None = None,
                seed: int = 0) -> ImageData:
    """Captioned coloured shapes on black, drawn by :func:`aigc_lib.shapes.draw_shapes` (notebook 08).

    ``colors``/``shapes``/``positions`` pick subsets; ``labels`` index the chosen ``shapes`` (= ``classes``),
    while ``attributes`` always index the full COLORS, SHAPES and POSITIONS: the same in every subset.
    """
    colors, shapes = _pick("colors", colors, list(COLORS)), _pick("shapes", shapes, SHAPES)
    positions = _pick("positions", positions, list(POSITIONS))
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(shapes))[torch.randperm(n, generator=g)]  # balanced over chosen shapes
    color = torch.tensor([list(COLORS).index(c) for c in colors])
    color = color[torch.randint(len(colors), (n,), generator=g)]
    where = torch.tensor([list(POSITIONS).index(p) for p in positions])
    where = where[torch.randint(len(positions), (n,), generator=g)]
    jitter = torch.rand(n, 3, generator=g) * 2 - 1
    shape_ids = torch.tensor([SHAPES.index(s) for s in shapes])[labels]
    images = draw_shapes(shape_ids, color, where, jitter, size)  # (N, 3, size, size) in [0, 1]
    captions = [shape_caption(list(COLORS)[c], SHAPES[s], list(POSITIONS)[p])
                for c, s, p in zip(color.tolist(), shape_ids.tolist(), where.tolist())]
    return ImageData(images * 2 - 1, labels, shapes, "shapes", captions,
                     {"color": color, "shape": shape_ids, "position": where})


# --------------------------------------------------------------------------------------------- folders
def _read_image(file: Path, size: tuple[int, int] | None, channels: int | None, resize: bool) -> Tensor:
    """One file as (C, H, W) in [0, 1], checked against ``size`` (H, W) and ``channels``."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            img.load()
    except OSError as error:
        raise ValueError(f"cannot read {file} as an image ({error}): re-save it or remove it.") from None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("L" if len(img.getbands()) == 1 else "RGB")
    have = len(img.getbands())
    if channels is not None and have != channels:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, "RGB")
        raise ValueError(f"{file} has {have} channel(s) (mode {img.mode}) but channels={channels} was asked "
                         f"for: convert it, e.g. Image.open(path).convert({mode!r}).save(path).")
    if size is not None and (img.height, img.width) != size:
        if not resize:
            raise ValueError(f"{file} is {img.height}x{img.width} (HxW) but size={size[0]}x{size[1]} was "
                             "asked for: pass resize=True to resize every image, or resize the files.")
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, dtype=np.float32) / 255)
    return x.reshape(img.height, img.width, have).permute(2, 0, 1)


def load_image_folder(path: str | os.PathLike, size: int | tuple[int, int] | None = None,
                      channels: int | None = None, resize: bool = False) -> ImageData:
    """Your images: one sub-folder per class (label = folder), or a flat folder (label 0) (notebook 03)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} {'is a file' if root.exists() else 'does not exist'}: "
                                "pass a folder of images, or one with a sub-folder per class.")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders, loose = [p for p in entries if p.is_dir()], [p for p in entries if p.is_file()]
    if folders and loose:
        raise ValueError(f"{root} mixes class sub-folders with loose files ({loose[0].name}, ...): "
                         "move every file into a class sub-folder, or use a flat folder.")
    groups = {f.name: sorted(q for q in f.rglob("*") if q.is_file() and not q.name.startswith("."))
              for f in folders} or {root.name: loose}
    accepted = ", ".join(IMAGE_EXTENSIONS)
    empty = [name for name, files in groups.items() if not files]
    if empty:
        raise ValueError(f"no images in {root} (empty: {', '.join(empty)}): add image files ({accepted}).")
    bad = [str(f.relative_to(root)) for files in groups.values() for f in files
           if f.suffix.lower() not in IMAGE_EXTENSIONS]
    if bad:
        raise ValueError(f"{len(bad)} file(s) in {root} are not images: {', '.join(bad[:5])}; accepted "
                         f"extensions: {accepted}. Move the other files out of the folder.")
    target = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
    images, labels, first = [], [], None
    for label, files in enumerate(groups.values()):
        for file in files:
            x = _read_image(file, target, channels, resize)  # (C, H, W) in [0, 1]
            first = first or file
            if images and x.shape != images[0].shape:
                raise ValueError(f"{file} is {tuple(x.shape)} (CxHxW), {first} {tuple(images[0].shape)}: "
                                 "pass size=... with resize=True (and channels=...) to make them agree.")
            images.append(x)
            labels.append(label)
    data = ImageData(torch.stack(images) * 2 - 1, torch.tensor(labels), list(groups), "image-folder")
    return _announce(root.name, data, f"your images in {root}")

