"""Images, text corpora, Q&A sets, splits and loaders: every source has an offline path; each load says so.

Online sources (torchvision MNIST / Fashion-MNIST / CIFAR-10, tiny Shakespeare) are used when reachable or
cached in ``data/cache``; the offline sources are the project's own: digits rendered from matplotlib's fonts,
scikit-learn's bundled 8x8 digits, captioned synthetic shapes, the corpora in ``data/text``, the installed
Python's docstrings (``stdlib-docs``, built once into ``data/cache``) and the Q&A sets in ``data/qa``. Every
random choice uses a local ``torch.Generator``: the same seed gives the same data everywhere. See
data/README.md.
"""
from __future__ import annotations

import ast
import json
import math
import os
import platform
import sysconfig
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aigc_lib import runtime, storage
from aigc_lib.shapes import COLORS, POSITIONS, SHAPES, draw_shapes, shape_caption

if TYPE_CHECKING:
    from typing_extensions import Self

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # the repository's data/, whatever the cwd
IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10", "font-digits", "sklearn-digits", "shapes")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ONLINE_CORPORA = {
    "tiny-shakespeare":
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}
STDLIB_CORPUS = "stdlib-docs"  # the installed Python's docstrings, read at run time (never committed)
STDLIB_SKIP = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__"})
MIN_DOCSTRING_CHARS = 80
QA_FIELDS = ("id", "intent", "question", "answer")
T = TypeVar("T")


class DatasetUnavailableError(RuntimeError):
    """An online dataset was asked for that is neither cached nor downloadable from here."""


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


# --------------------------------------------------------------------------------------------- text
def text_corpora(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the offline corpora: the files in ``data/text`` and ``stdlib-docs`` (notebook 04)."""
    files = [p.stem for p in (Path(root) if root else DATA_DIR).joinpath("text").glob("*.txt")]
    return sorted({*files, STDLIB_CORPUS})


def _download(url: str, dest: Path, timeout: float = 30) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except OSError as error:
        raise DatasetUnavailableError(f"could not download {url} ({error}).") from error
    storage.atomic_write(dest, payload)  # never leave a half-written corpus in the cache


def _doc_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The module, then every class and function in it (nested, or under ``if``/``try``), in source order."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _doc_nodes(child)


def _stdlib_docstrings(stdlib: Path) -> list[str]:
    """Cleaned module/class/function docstrings of the ``.py`` files under ``stdlib``: sorted paths, no tests,
    nothing shorter than ``MIN_DOCSTRING_CHARS``, no exact repeats."""
    docs, seen = [], set()
    for file in sorted(stdlib.rglob("*.py")):
        if STDLIB_SKIP.intersection(file.relative_to(stdlib).parts[:-1]):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences and the like in old modules
                tree = ast.parse(file.read_bytes(), str(file))
        except (OSError, SyntaxError, ValueError):  # unreadable, Python 2 leftovers, null bytes
            continue
        for node in _doc_nodes(tree):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= MIN_DOCSTRING_CHARS and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return docs


def _stdlib_docs(cache: Path, rebuild: bool = False) -> tuple[str, str]:
    """The ``stdlib-docs`` text and how it was found: the cached build for this Python, or a fresh build."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    path = cache / f"{STDLIB_CORPUS}-{python.replace(' ', '-').lower()}.json"
    if path.is_file() and not rebuild:
        try:
            built = json.loads(path.read_text(encoding="utf-8"))
            return built["text"], (f"cached build {path} ({built['docstrings']:,} docstrings from {python}'s "
                                   "standard library)")
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is rebuilt below
    stdlib, start = Path(sysconfig.get_paths()["stdlib"]), time.perf_counter()
    docs = _stdlib_docstrings(stdlib)
    if not docs:
        raise FileNotFoundError(f"no docstrings found under {stdlib}: this Python was installed without the "
                                "sources of its standard library; use another corpus, e.g. 'fables'.")
    text = "\n\n".join(docs) + "\n"
    storage.atomic_write(path, json.dumps({"python": python, "stdlib": str(stdlib), "docstrings": len(docs),
                                           "text": text}))
    return text, (f"built from {len(docs):,} docstrings in {stdlib} ({python}) in "
                  f"{time.perf_counter() - start:.1f} s, cached in {path}")


def load_text(name: str = "fables", source: str = "auto", root: str | os.PathLike | None = None,
              max_chars: int | None = None) -> str:
    """A UTF-8 corpus: a project file in data/text (or a .txt path), the installed Python's docstrings
    ("stdlib-docs") or tiny Shakespeare (notebook 04).

    ``source``: "auto" (the local file or cached copy, else download), "local" (never the network) or
    "download" (fetch an online corpus again; rebuild "stdlib-docs"). ``root`` holds ``text/`` and
    ``cache/`` (default: data/). ``max_chars`` keeps the start of the corpus, cut at a blank line.
    """
    if source not in ("auto", "local", "download"):
        raise ValueError(f"unknown text source {source!r}: choose 'auto', 'local' or 'download'.")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be a positive number of characters or None, got {max_chars!r}.")
    base = Path(root) if root else DATA_DIR
    offline = f"offline corpora: {', '.join(text_corpora(base))} (files in {base / 'text'})"
    path = None
    if name == STDLIB_CORPUS:
        text, how = _stdlib_docs(base / "cache", rebuild=source == "download")
    elif name in ONLINE_CORPORA:
        url, path = ONLINE_CORPORA[name], base / "cache" / f"{name}.txt"
        if path.is_file() and source != "download":
            how = f"cached copy of {url} in {path}"
        elif source == "local" or not runtime.is_online():
            raise DatasetUnavailableError(f"{name} is not cached in {path.parent} and this machine is "
                                          f"offline (or source='local'): use one of the {offline}; or "
                                          "connect once to download it.")
        else:
            _download(url, path)
            how = f"downloaded {url} to {path}"
    else:
        path = Path(name) if name.endswith(".txt") else base / "text" / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"no corpus {name!r} ({path} does not exist): {offline}; "
                                    f"online: {', '.join(ONLINE_CORPORA)}.")
        how = f"offline corpus {path}"
    if path is not None:
        text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"corpus {name!r} ({path}) is empty: write UTF-8 text into it, or pick another.")
    if max_chars is not None and len(text) > max_chars:
        cut = text.rfind("\n\n", 0, max_chars)  # end on a whole paragraph when there is one
        how += f", first {max_chars:,} of {len(text):,} characters"
        text = text[:cut + 1] if cut > 0 else text[:max_chars]
    print(f"[aigc.data] text {name}: {how}, {len(text):,} characters, {len(text.splitlines()):,} lines")
    return text


# --------------------------------------------------------------------------------------------- Q&A
def qa_sets(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the question-answer sets in ``data/qa`` (files ``<name>_qa.jsonl``) (notebook 12)."""
    folder = (Path(root) if root else DATA_DIR) / "qa"
    return sorted(p.name.removesuffix("_qa.jsonl") for p in folder.glob("*_qa.jsonl"))


def load_qa(name: str = "shop", root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Question-answer pairs from ``data/qa/<name>_qa.jsonl``, each {id, intent, question, answer} (notebook 12).

    The file holds one JSON object per line; ``root`` holds ``qa/`` (default: data/).
    """
    base = Path(root) if root else DATA_DIR
    path = base / "qa" / f"{name}_qa.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no Q&A set {name!r} ({path} does not exist): sets in {base / 'qa'}: "
                                f"{', '.join(qa_sets(base)) or 'none'}.")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: not valid JSON ({error}); each line must be one object "
                             f"with the fields {', '.join(QA_FIELDS)}.") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record[k].strip()
                                                   for k in QA_FIELDS):
            raise ValueError(f"{path}, line {number}: need non-empty text fields {', '.join(QA_FIELDS)}; got "
                             f"{line[:80]!r}.")
        records.append({k: record[k] for k in QA_FIELDS})
    if not records:
        raise ValueError(f"Q&A set {name!r} ({path}) is empty: write one JSON object per line into it.")
    intents = len({r["intent"] for r in records})
    print(f"[aigc.data] qa {name}: offline set {path}, {len(records):,} pairs, {intents} intents")
    return records


# --------------------------------------------------------------------------------------------- splits
def _answer_key(answer: str) -> str:
    """An answer with case and runs of whitespace normalised: the unit that must not cross splits (notebook 05)."""
    return " ".join(answer.lower().split())


def qa_split(pairs: Sequence[dict[str, str]], fractions: Sequence[float] = (0.6, 0.2, 0.2),
             seed: int = 0) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Train/validation/test Q&A pairs split by answer, stratified by intent (notebook 05).

    All pairs whose answers are equal (ignoring case and spacing) go to one split, so no test answer can be
    recalled word for word from training. Within each intent the answers are shuffled (seeded); the first goes
    to train, so every intent is represented there, and the rest fill the splits towards ``fractions`` of the
    pairs. An intent with one answer sits in train only.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three positive numbers (train, validation, test) that sum to 1, "
                         f"got {tuple(fractions)}.")
    groups: dict[str, dict[str, list[dict[str, str]]]] = {}  # intent -> normalised answer -> its pairs
    for number, pair in enumerate(pairs):
        if not all(isinstance(pair.get(k), str) for k in ("intent", "answer")):
            raise ValueError(f"pair {number} needs text fields 'intent' and 'answer' (e.g. from load_qa), got "
                             f"{pair!r:.80}.")
        groups.setdefault(pair["intent"], {}).setdefault(_answer_key(pair["answer"]), []).append(pair)
    n_answers = sum(len(g) for g in groups.values())
    if n_answers < 2 * len(groups) or n_answers < 3:
        raise ValueError(f"{len(pairs)} pairs hold only {n_answers} distinct answers in {len(groups)} intents: a "
                         "split by answer needs on average at least two answers per intent (one stays in "
                         "train); add pairs with other answers, or split by question with `split`.")
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    shuffled = {}
    for intent in sorted(groups):
        keys = sorted(groups[intent])
        shuffled[intent] = [keys[i] for i in rng.permutation(len(keys))]
        parts[0].extend(groups[intent][shuffled[intent][0]])  # every intent is seen in training
    # the pairs still to place are shared out so that the totals come near `fractions` of all pairs
    rest = len(pairs) - len(parts[0])
    need = [max(f * len(pairs) - len(p), 0.0) for f, p in zip(fractions, parts)]
    share = [x / sum(need) for x in need]
    for intent in sorted(groups):
        keys = shuffled[intent][1:]
        size = sum(len(groups[intent][k]) for k in keys)
        placed = [0, 0, 0]
        for key in keys:  # to the split furthest below its share of this intent's pairs
            k = max(range(3), key=lambda i: share[i] * size - placed[i])
            placed[k] += len(groups[intent][key])
            parts[k].extend(groups[intent][key])
    if not parts[1] or not parts[2]:
        raise ValueError(f"{n_answers} distinct answers are too few to fill validation and test by {tuple(fractions)}"
                         f" ({rest} pairs left after one answer per intent went to train): add pairs with other "
                         "answers.")
    return parts


def split_seen_answers(train: Sequence[dict[str, str]], n: int, seed: int = 0,
                       ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Move ``n`` pairs out of ``train``, each a new wording of an answer that stays in train (notebook 05).

    The held-out pairs measure recall of a known answer under a new question, not generalisation: at most one
    pair per answer is taken, and only from answers with at least two pairs.
    """
    by_answer: dict[str, list[int]] = {}
    for i, pair in enumerate(train):
        by_answer.setdefault(_answer_key(pair["answer"]), []).append(i)
    candidates = sorted(idx[-1] for idx in by_answer.values() if len(idx) >= 2)
    if not 1 <= n <= len(candidates):
        raise ValueError(f"n must be between 1 and {len(candidates)} (the answers in train with two or more "
                         f"wordings), got {n}.")
    rng = np.random.default_rng(seed)
    chosen = {candidates[i] for i in rng.choice(len(candidates), size=n, replace=False).tolist()}
    return ([p for i, p in enumerate(train) if i not in chosen], [p for i, p in enumerate(train) if i in chosen])


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> tuple[Tensor, ...]:
    """Shuffle 0..n-1 once (seeded), cut it into disjoint parts by ``fractions``, e.g. 6:2:2 (notebook 05)."""
    if len(fractions) < 1 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {tuple(fractions)}.")
    sizes = [round(f * n) for f in fractions[:-1]]
    sizes.append(n - sum(sizes))
    if min(sizes) < 1:
        raise ValueError(f"n={n} is too small to split by {tuple(fractions)}: a part would be empty.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return tuple(order.split(sizes))


def split(data: ImageData | Tensor | Sequence[T], fractions: Sequence[float] = (0.6, 0.2, 0.2),
          seed: int = 0) -> tuple[Any, ...]:
    """``split_indices`` applied to an ImageData, a tensor or a list (e.g. of text lines) (notebook 05)."""
    if isinstance(data, str):
        raise TypeError("split a list of lines or documents (e.g. text.splitlines()), not one string.")
    parts = split_indices(len(data), fractions, seed)
    if isinstance(data, ImageData):
        return tuple(data.subset(p) for p in parts)
    if isinstance(data, Tensor):
        return tuple(data[p] for p in parts)
    return tuple([data[i] for i in p.tolist()] for p in parts)


# --------------------------------------------------------------------------------------------- loaders
class _EpochLoader:
    """Epoch/position state, the per-epoch order and sharding that both loaders share (notebook 03).

    Protocol used by the trainer: ``len`` = batches per epoch; iterating yields the rest of the current
    epoch from ``position`` and then moves to the next epoch; ``state_dict``/``load_state_dict`` resume.
    """

    def _setup(self, num_items: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if num_items < 1:
            raise ValueError("the dataset is empty: a loader needs at least one item.")
        self.num_items, self.batch_size, self.shuffle, self.drop_last, self.seed = (
            num_items, batch_size, shuffle, drop_last, seed)
        self.num_shards, self.shard_index, self.epoch, self.position = 1, 0, 0, 0
        self._check_size()

    def _check_size(self) -> None:
        if self.drop_last and self.num_items < self.global_batch:
            raise ValueError(f"the dataset has {self.num_items} items, fewer than one batch of "
                             f"{self.global_batch} (batch_size {self.batch_size} x {self.num_shards} "
                             "shard(s)): lower batch_size, or pass drop_last=False.")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_shards

    def __len__(self) -> int:
        full, rest = divmod(self.num_items, self.global_batch)
        return full + (1 if rest and not self.drop_last else 0)

    def shard(self, num_shards: int, index: int) -> Self:
        """Data parallel: take slice ``index`` of every global batch of ``batch_size * num_shards`` items."""
        if not (isinstance(num_shards, int) and num_shards >= 1 and 0 <= index < num_shards):
            raise ValueError(f"need num_shards >= 1 and 0 <= index < num_shards, got {num_shards}, {index}.")
        if num_shards > 1 and not self.drop_last:
            raise ValueError("sharding needs drop_last=True, so that every process takes the same steps.")
        self.num_shards, self.shard_index = num_shards, index
        self._check_size()
        return self

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: the epoch, and how many of its batches were already yielded."""
        if self.position >= len(self):
            return {"epoch": self.epoch + 1, "position": 0}
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``: the next iteration yields the rest of that epoch."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"invalid loader state {state}: position must be in 0..{len(self)}.")
        self.epoch, self.position = epoch, position

    def _index_batches(self, device: torch.device | None = None) -> Iterator[Tensor]:
        """This epoch's index batches from ``position`` on; the order depends only on seed + epoch."""
        if self.shuffle:  # a CPU generator: the same permutation on every device and process
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).to(device)
        else:
            order = torch.arange(self.num_items, device=device)
        offset = self.shard_index * self.batch_size
        for step in range(self.position, len(self)):
            start = step * self.global_batch + offset
            yield order[start:start + self.batch_size]

    def _finish_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0


class TensorLoader(_EpochLoader):
    """Batches of in-memory tensors that live on the device; a batch costs one index (notebook 03)."""

    def __init__(self, *tensors: Tensor, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, device: str | torch.device | None = None,
                 channels_last: bool = False) -> None:
        if not tensors or len({len(t) for t in tensors}) != 1:
            shapes = [tuple(t.shape) for t in tensors]
            raise ValueError(f"need one or more tensors with equal first dimensions, got {shapes}.")
        self._setup(len(tensors[0]), batch_size, shuffle, drop_last, seed)
        self.device = torch.device(device) if device is not None else tensors[0].device
        self.tensors = tuple(self._place(t, channels_last) for t in tensors)  # moved once, here

    def _place(self, tensor: Tensor, channels_last: bool) -> Tensor:
        tensor = tensor.to(self.device)
        if channels_last and tensor.ndim == 4 and tensor.is_floating_point():
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, ...]]:
        for index in self._index_batches(self.device):
            self.position += 1  # before yielding: a state saved after this batch resumes after it
            batch = tuple(t[index] for t in self.tensors)
            yield batch[0] if len(batch) == 1 else batch
        self._finish_epoch()


class DatasetLoader(_EpochLoader):
    """torch's DataLoader for map-style datasets, with TensorLoader's protocol; batches stay on the CPU."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        self.dataset, self.num_workers, self.collate_fn = dataset, num_workers, collate_fn
        self._setup(len(dataset), batch_size, shuffle, drop_last, seed)

    def __iter__(self) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        # the batch sampler: this epoch's index lists from `position` on, so resuming skips without loading
        batch_sampler = [index.tolist() for index in self._index_batches()]
        loader = DataLoader(self.dataset, batch_sampler=batch_sampler, num_workers=self.num_workers,
                            collate_fn=self.collate_fn)
        for batch in loader:
            self.position += 1
            yield batch
        self._finish_epoch()


def infinite(loader: Iterable[T]) -> Iterator[T]:
    """Yield batches epoch after epoch, forever; a resumed loader first finishes its epoch (notebook 03)."""
    while True:
        yield from loader
