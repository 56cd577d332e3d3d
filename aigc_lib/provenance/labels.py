"""Content labels for AI-generated images, and model cards (chapter 11).

Two rules ask generated content to say what it is:

- China's *Measures for Labeling AI-Generated Synthetic Content* (人工智能生成合成内容标识办法, in force
  2025-09-01) with the mandatory national standard GB 45438-2025 ask for an **explicit label** (显式标识),
  visible to people, e.g. the text "AI生成" on the image, and an **implicit label** (隐式标识) in the file's
  metadata that records that the content is AI-generated, the provider's name or code and a content ID.
- The EU AI Act, Article 50(2), asks that outputs of generative AI be "marked in a machine-readable format and
  detectable as artificially generated or manipulated".

What is computed here: :func:`add_visible_label` draws the explicit label, :func:`save_labeled_png` writes the
implicit label into PNG text chunks (one iTXt chunk per field plus one JSON chunk with the whole label) and
:func:`read_png_label` reads it back. The metadata keys (``AIGC``, ``generator``, ``model``, ``provider``,
``content_id``, ``created``, ``extra``) are **the course's own illustration of an implicit label, not the
normative encoding of GB 45438-2025**; read the standard itself before labelling content for real.
:func:`strip_metadata` shows why metadata alone is fragile: a re-encode or a screenshot keeps the pixels and drops
the label (watermarks in the pixels, :mod:`~aigc_lib.provenance.watermark` for text, are the complement).
:func:`model_card` writes the Hugging Face model card (Mitchell et al. 2019, "Model Cards for Model Reporting")
that documents the model behind the labelled content.
"""
from __future__ import annotations

import hashlib
import json
import math
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelCardData
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

__all__ = [
    "CJK_FONT_CANDIDATES", "FALLBACK_LABEL_TEXT", "LABEL_JSON_KEY", "ContentLabel", "ImageLike",
    "add_visible_label", "find_label_font", "model_card", "pixel_sha256", "read_png_label", "save_labeled_png",
    "strip_metadata", "to_pil_image",
]

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]
LABEL_JSON_KEY = "aigc_label"  # the PNG chunk that holds the whole label as JSON
_FIELDS = ("AIGC", "generator", "model", "provider", "content_id", "created")  # one iTXt chunk each
FALLBACK_LABEL_TEXT = "AI-generated"  # drawn when no font on the system has the glyphs of the requested text
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
CJK_FONT_CANDIDATES = (  # tried before matplotlib's list of system fonts (Debian/Ubuntu, Fedora, Arch, macOS, Windows)
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class ContentLabel:
    """The implicit label of one piece of generated content (notebook 11).

    ``ai_generated`` says the content is AI-generated; ``generator`` is the program that made it (e.g.
    ``"aigc_lib DCGAN sampler"``), ``model`` the model (name or hub id), ``provider`` the name or code of the
    service provider; ``content_id`` identifies the item (default: a random UUID4; :meth:`for_image` uses the
    SHA-256 of the pixels instead); ``created`` is the UTC time in ISO 8601; ``extra`` holds any further
    JSON-serialisable fields (Chinese text included). The key names are the course's scheme, not GB 45438-2025's.
    """

    generator: str
    model: str
    provider: str
    ai_generated: bool = True
    content_id: str = field(default_factory=lambda: f"uuid4:{uuid.uuid4()}")
    created: str = field(default_factory=_utc_now)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("generator", "model", "provider", "content_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ContentLabel.{name} must be a non-empty string, got {value!r}; the provider's "
                                 "name or code and the model are what the implicit label exists to record.")
        if not isinstance(self.ai_generated, bool):
            raise ValueError(f"ai_generated must be True or False, got {self.ai_generated!r}.")
        try:
            created = datetime.fromisoformat(self.created)
        except (TypeError, ValueError):
            raise ValueError(f"created must be an ISO 8601 time such as '2025-09-01T12:00:00+00:00', got "
                             f"{self.created!r}.") from None
        if created.utcoffset() is None or created.utcoffset().total_seconds() != 0:
            raise ValueError(f"created must be in UTC with its offset written out ('+00:00'), got {self.created!r}"
                             "; use datetime.now(timezone.utc).isoformat().")
        if not isinstance(self.extra, dict) or not all(isinstance(k, str) for k in self.extra):
            raise ValueError(f"extra must be a dict with string keys, got {self.extra!r}.")
        try:  # stored as its JSON image (tuples become lists), so a saved label reads back equal
            object.__setattr__(self, "extra", json.loads(json.dumps(self.extra, allow_nan=False)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"extra must hold JSON values only (str, numbers, bools, None, lists, dicts): "
                             f"{err}; convert other objects to strings first.") from None

    @classmethod
    def for_image(cls, image: ImageLike, **fields: Any) -> ContentLabel:
        """A label whose ``content_id`` is the SHA-256 of the image's pixels (:func:`pixel_sha256`)."""
        return cls(content_id=pixel_sha256(image), **fields)

    def to_dict(self) -> dict[str, Any]:
        """The label as a JSON-ready dict: ``{"AIGC": "true", "generator": ..., ..., "extra": {...}}``."""
        return {"AIGC": "true" if self.ai_generated else "false", "generator": self.generator,
                "model": self.model, "provider": self.provider, "content_id": self.content_id,
                "created": self.created, "extra": json.loads(json.dumps(self.extra))}  # a copy

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContentLabel:
        """Inverse of :meth:`to_dict`; ``extra`` may be missing."""
        unknown = sorted(set(d) - set(_FIELDS) - {"extra"})
        missing = sorted(set(_FIELDS) - set(d))
        if unknown or missing:
            raise ValueError(f"a label dict has the keys {list(_FIELDS) + ['extra']}; missing {missing}, unknown "
                             f"{unknown}. Put further fields under 'extra'.")
        flag = d["AIGC"]
        if flag not in ("true", "false", True, False):
            raise ValueError(f"'AIGC' must be 'true' or 'false', got {flag!r}.")
        return cls(ai_generated=flag in ("true", True), generator=d["generator"], model=d["model"],
                   provider=d["provider"], content_id=d["content_id"], created=d["created"],
                   extra=dict(d.get("extra") or {}))


def to_pil_image(image: ImageLike) -> Image.Image:
    """A PIL image from a PIL image, a uint8 array (H, W[, 3|4]) or a tensor (C, H, W) (notebook 11).

    A floating tensor is read as the course's generators write it, in [-1, 1], and converted as
    ``uint8 = round((clamp(x, -1, 1) + 1) * 127.5)`` (the same mapping as ``aigc_lib.metrics.image``); a uint8
    tensor is taken as 0..255. One channel gives mode "L", three "RGB", four "RGBA".
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        x = image.detach().cpu()
        if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
            raise ValueError(f"a tensor image must be one (C, H, W) image with C in 1, 3, 4, got shape "
                             f"{tuple(x.shape)}; take one image of a batch with x[0].")
        if x.is_floating_point():
            if not torch.isfinite(x).all():
                raise ValueError("the tensor holds NaN or inf; a generator that diverged has no image to label.")
            x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (C, H, W) in 0..255
        elif x.dtype != torch.uint8:
            raise ValueError(f"a tensor image must be floating in [-1, 1] or uint8, got {x.dtype}.")
        image = x.permute(1, 2, 0).numpy()  # (H, W, C)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a PIL image, a numpy array or a torch tensor, got {type(image).__name__}.")
    if image.dtype != np.uint8:
        raise ValueError(f"a numpy image must be uint8 in 0..255, got {image.dtype}; convert a [0, 1] float "
                         "array with (x * 255).round().astype(np.uint8).")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"a numpy image must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}.")
    return Image.fromarray(np.ascontiguousarray(image))


def pixel_sha256(image: ImageLike) -> str:
    """``"sha256:<hex>"`` of the image's mode, size and pixel bytes: a content ID that lossless copies keep."""
    img = to_pil_image(image)
    h = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode())
    h.update(img.tobytes())
    return f"sha256:{h.hexdigest()}"


def save_labeled_png(image: ImageLike, path: str | Path, label: ContentLabel) -> Path:
    """Write ``image`` as a PNG carrying ``label`` as its implicit label (notebook 11).

    Each field of ``label.to_dict()`` but ``extra`` goes into its own iTXt chunk (UTF-8, so Chinese text
    survives) for tools that list text chunks, and the whole label into one iTXt chunk ``"aigc_label"`` as JSON,
    which :func:`read_png_label` reads back exactly. Other metadata of a PIL input is not copied.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_labeled_png writes PNG, so the path must end in .png, got {path.name!r}; "
                         "JPEG has no text chunks for the label.")
    if not isinstance(label, ContentLabel):
        raise ValueError(f"label must be a ContentLabel, got {type(label).__name__}; build one with "
                         "ContentLabel(generator=..., model=..., provider=...).")
    d = label.to_dict()
    info = PngInfo()
    for key in _FIELDS:
        info.add_itxt(key, d[key])
    info.add_itxt(LABEL_JSON_KEY, json.dumps(d, ensure_ascii=False, sort_keys=True))
    to_pil_image(image).save(path, format="PNG", pnginfo=info)
    return path


def read_png_label(path: str | Path) -> ContentLabel | None:
    """The implicit label of an image file, or ``None`` when it carries none (notebook 11).

    Reads the JSON chunk written by :func:`save_labeled_png` (falling back to the per-field chunks when only
    those are there) and raises ValueError when the per-field chunks contradict the JSON: the file was edited
    after labelling. Any format PIL opens is accepted; a JPEG or a stripped PNG gives ``None``.
    """
    try:
        with Image.open(path) as img:
            img.load()
            text = dict(getattr(img, "text", None) or img.info)
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image PIL can read; pass the PNG written by save_labeled_png.") from None
    if LABEL_JSON_KEY not in text:
        if "AIGC" not in text:
            return None
        return ContentLabel.from_dict({k: str(text[k]) for k in _FIELDS if k in text})
    try:
        d = json.loads(text[LABEL_JSON_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"the {LABEL_JSON_KEY!r} chunk of {path} is not valid JSON ({err}); the label was "
                         "damaged, label the image again.") from None
    clashes = [k for k in _FIELDS if k in text and str(text[k]) != d.get(k)]
    if clashes:
        raise ValueError(f"the chunks {clashes} of {path} disagree with its {LABEL_JSON_KEY!r} chunk: the file was "
                         "edited after labelling; do not trust either copy.")
    return ContentLabel.from_dict(d)


def strip_metadata(path_in: str | Path, path_out: str | Path, *, quality: int = 95) -> Path:
    """Re-encode an image keeping only its pixels, as a screenshot or an upload pipeline does (notebook 11).

    The output format follows ``path_out``'s suffix: ``.png`` keeps the pixels exactly and drops every chunk,
    ``.jpg``/``.jpeg`` also re-compresses them (``quality``). Either way the implicit label is gone: metadata
    labels are fragile, which is why rules ask for the explicit label too.
    """
    path_out = Path(path_out)
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
    fmt = formats.get(path_out.suffix.lower())
    if fmt is None:
        raise ValueError(f"path_out must end in one of {sorted(formats)}, got {path_out.name!r}.")
    with Image.open(path_in) as img:
        mode = "RGBA" if (fmt == "PNG" and "A" in img.getbands()) else ("L" if img.mode == "L" else "RGB")
        pixels = np.asarray(img.convert(mode))  # (H, W[, C]): pixels only, no info dict
    clean = Image.fromarray(pixels)
    clean.save(path_out, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path_out


def _covers(font_path: str | Path, text: str) -> bool:
    """Whether the font's first face has its own glyph for every non-space character of ``text``.

    Distinct characters must map to distinct glyphs: "last resort" fonts (matplotlib ships LastResortHE) map
    every character of a Unicode block to one placeholder box, i.e. they draw tofu while claiming coverage.
    """
    try:
        font = FT2Font(str(font_path))
    except (OSError, RuntimeError, ValueError):
        return False
    chars = sorted({c for c in text if not c.isspace()})
    glyphs = [font.get_char_index(ord(c)) for c in chars]
    return "last resort" not in font.family_name.lower() and 0 not in glyphs and len(set(glyphs)) == len(chars)


@lru_cache(maxsize=32)
def find_label_font(text: str = "AI生成") -> Path | None:
    """A font file on this system with glyphs for every character of ``text``, or ``None`` (notebook 11).

    Tries :data:`CJK_FONT_CANDIDATES` (Noto Sans CJK, WenQuanYi, AR PL, PingFang, Microsoft YaHei, SimHei), then
    every font matplotlib's font manager knows. Install one with e.g. ``apt-get install fonts-noto-cjk``.
    """
    system = sorted({Path(f.fname) for f in font_manager.fontManager.ttflist})
    candidates = [Path(p) for p in CJK_FONT_CANDIDATES] + system
    return next((p for p in candidates if p.is_file() and _covers(p, text)), None)


def _pick_font(text: str, font_path: str | Path | None) -> tuple[str, str | Path | None]:
    """(text to draw, font file or None for PIL's default font); warns when it has to fall back."""
    if font_path is not None:
        if not _covers(font_path, text):
            raise ValueError(f"the font {font_path} has no glyphs for some characters of {text!r}; pass a CJK "
                             "font such as Noto Sans CJK, or font_path=None to search the system.")
        return text, font_path
    if text.isascii():
        return text, None
    found = find_label_font(text)
    if found is not None:
        return text, found
    warnings.warn(f"no font on this system has glyphs for {text!r}, so the label reads {FALLBACK_LABEL_TEXT!r} "
                  "instead (never boxes of missing glyphs). Install a CJK font, e.g. apt-get install "
                  "fonts-noto-cjk, or pass font_path.", UserWarning, stacklevel=3)
    return FALLBACK_LABEL_TEXT, None


def _load_font(font_path: str | Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size) if font_path is None else ImageFont.truetype(str(font_path), size)


def add_visible_label(image: ImageLike, text: str = "AI生成", position: str = "bottom-right", *,
                      font_path: str | Path | None = None, font_size: int | None = None,
                      margin: int | None = None, padding: int | None = None) -> Image.Image:
    """A copy of ``image`` with ``text`` drawn on a solid box in one corner: the explicit label (notebook 11).

    The box is dark with white text over a light corner and light with black text over a dark one, so the
    label stands out from the image as well as being legible. Non-ASCII text needs a font with its glyphs: the
    system is searched (:func:`find_label_font`); when none has them the label falls back to "AI-generated" in
    PIL's default font with a warning. ``font_size`` defaults to 6% of the shorter side (at least 12 px), and
    shrinks (down to 8 px) until the box fits; an explicit ``font_size`` that does not fit raises ValueError.
    The input is not modified; the result is RGB (RGBA if the input had alpha).
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}.")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string such as 'AI生成', got {text!r}.")
    img = to_pil_image(image)
    img = img.convert("RGBA" if "A" in img.getbands() else "RGB")  # a copy: the input stays as it was
    width, height = img.size
    text, font_file = _pick_font(text, font_path)
    margin = max(1, round(0.02 * min(width, height))) if margin is None else margin
    sizes = [font_size] if font_size is not None else range(max(12, round(0.06 * min(width, height))), 7, -1)
    for size in sizes:
        font = _load_font(font_file, size)
        pad = max(2, size // 4) if padding is None else padding
        left, top, right, bottom = ImageDraw.Draw(img).textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
        if box_w + 2 * margin <= width and box_h + 2 * margin <= height:
            break
    else:
        raise ValueError(f"the label {text!r} does not fit a {width}x{height} image at font size {size}; upscale "
                         "the image first (img.resize((4 * w, 4 * h), Image.NEAREST)) or pass a shorter text.")
    x0 = margin if position.endswith("left") else width - margin - box_w
    y0 = margin if position.startswith("top") else height - margin - box_h
    corner = np.asarray(img.convert("L").crop((x0, y0, x0 + box_w, y0 + box_h)), dtype=np.float64)
    dark_box = corner.mean() >= 128  # luminance of the covered corner decides the box colour
    fill, ink = ((0, 0, 0), (255, 255, 255)) if dark_box else ((255, 255, 255), (0, 0, 0))
    if img.mode == "RGBA":  # opaque box and text
        fill, ink = fill + (255,), ink + (255,)
    draw = ImageDraw.Draw(img)
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=fill)
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=ink)
    return img


_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

{{ description }}

## Intended use

{{ intended_use }}

## Training data

{{ training_data }}

## Limitations

{{ limitations }}

## Evaluation

| metric | value |
|---|---|
{% for metric, value in evaluation_rows %}| {{ metric }} | {{ value }} |
{% endfor %}
## Labelling of generated content

Outputs carry an explicit label (visible text such as "AI生成" / "AI-generated") and an implicit label in
the file's metadata (AIGC flag, generator, model, provider, content ID, creation time), as China's Measures
for Labeling AI-Generated Synthetic Content and the EU AI Act, Article 50(2), ask. The metadata keys follow
the aigc_lib course scheme, not the normative encoding of GB 45438-2025.

License: {{ license }}
"""


def model_card(name: str, *, description: str, license: str, training_data: str, intended_use: str,
               limitations: str, evaluation: dict[str, float], tags: tuple[str, ...] = ("aigc-course",)
               ) -> ModelCard:
    """A Hugging Face model card (Mitchell et al., 2019) for a course model, from the course's template.

    The YAML header holds ``license``, ``model_name`` and ``tags`` (``ModelCardData``); the body has one section
    per argument and the ``evaluation`` numbers as a table (values written with ``repr``, so nothing is rounded).
    Save with ``card.save("README.md")``; ``ModelCard.load`` of that file gives the same card back, offline.
    """
    texts = {"name": name, "description": description, "license": license, "training_data": training_data,
             "intended_use": intended_use, "limitations": limitations}
    empty = [k for k, v in texts.items() if not isinstance(v, str) or not v.strip()]
    if empty:
        raise ValueError(f"model_card needs non-empty text for {empty}; a card that leaves out its training data "
                         "or limitations is what model cards exist to prevent.")
    bad = {k: v for k, v in evaluation.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)}
    if not evaluation or bad:
        raise ValueError(f"evaluation must map metric names to finite numbers, e.g. {{'FID': 23.5}}; got "
                         f"{evaluation!r}" + (f", bad entries {bad}." if bad else "."))
    data = ModelCardData(license=license, model_name=name, tags=list(tags))
    rows = [(metric, repr(float(value)) if isinstance(value, float) else str(value))
            for metric, value in evaluation.items()]
    return ModelCard.from_template(data, template_str=_CARD_TEMPLATE, description=description.strip(),
                                   intended_use=intended_use.strip(), training_data=training_data.strip(),
                                   limitations=limitations.strip(), evaluation_rows=rows)
