"""Product posters: a generated (or any) image, a headline and a slogan set by code, and the chapter 11 labels.

Diffusion models cannot draw text reliably: letters come out misspelt, Chinese characters as plausible-looking
strokes that are no characters at all, because the model learned the LOOK of text from pixels, not its spelling.
So an ad pipeline lets the model draw the picture and sets the words with a font, as here: :func:`compose_poster`
places the image on a canvas, wraps and sizes the text with PIL (shrinking the font until it fits), and draws
the explicit label (:func:`~aigc_lib.provenance.labels.add_visible_label`); :func:`save_poster` writes the PNG
with the implicit label (:class:`~aigc_lib.provenance.labels.ContentLabel`), which
:func:`~aigc_lib.provenance.labels.read_png_label` reads back (notebook 14).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from aigc_lib.provenance.labels import (
    ContentLabel,
    ImageLike,
    add_visible_label,
    find_label_font,
    save_labeled_png,
    to_pil_image,
)

__all__ = ["PosterLayout", "compose_poster", "fit_text", "poster_font", "poster_layout", "save_poster"]

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)
BACKGROUND = (246, 241, 232)  # warm paper
HEADLINE_INK = (40, 36, 32)
SLOGAN_INK = (92, 74, 60)
LABEL_TEXT = {"en": "AI-generated", "zh": "AI生成"}


@dataclass(frozen=True)
class PosterLayout:
    """Where each part of a poster goes: canvas size and the image, headline and slogan boxes (notebook 14)."""

    size: tuple[int, int]
    image: Box
    headline: Box
    slogan: Box


def poster_layout(size: tuple[int, int] = (768, 1024), image_share: float = 0.64) -> PosterLayout:
    """A portrait layout: the image on top (``image_share`` of the height), then headline, then slogan, with a
    margin of 5% of the width around everything (notebook 14)."""
    width, height = size
    if width < 64 or height < 64:
        raise ValueError(f"a poster needs at least 64x64 pixels, got size={size}.")
    if not 0.2 <= image_share <= 0.85:
        raise ValueError(f"image_share must lie in [0.2, 0.85] so that the text has room, got {image_share}.")
    m = max(2, round(0.05 * width))
    image_bottom = round(image_share * height)
    text_h = height - image_bottom - 2 * m  # below the image: headline (45%) and slogan (55%)
    head_bottom = image_bottom + m + round(0.45 * text_h)
    return PosterLayout(size=(width, height), image=(m, m, width - m, image_bottom),
                        headline=(m, image_bottom + m, width - m, head_bottom),
                        slogan=(m, head_bottom, width - m, height - m))


def poster_font(text: str, font_path: str | Path | None = None) -> str | Path | None:
    """The font file to set ``text`` in: ``font_path`` if given, PIL's built-in font (``None``) for ASCII,
    otherwise a system font with every glyph (:func:`find_label_font`), or ValueError saying how to install one
    (notebook 14)."""
    if font_path is not None:
        if not Path(font_path).is_file():
            raise ValueError(f"font_path {font_path} is not a file; pass a .ttf/.otf/.ttc font file.")
        return font_path
    if text.isascii():
        return None
    found = find_label_font(text)
    if found is None:
        raise ValueError(f"no font on this system has glyphs for every character of {text!r}: Chinese needs a CJK "
                         "font. Install one (Debian/Ubuntu: apt-get install fonts-noto-cjk, or fonts-wqy-microhei; "
                         "Colab: !apt-get -qq install fonts-noto-cjk) or pass font_path=... to a font file.")
    return found


def _font(font_file: str | Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size) if font_file is None else ImageFont.truetype(str(font_file), size)


def _units(text: str, lang: str) -> tuple[list[str], str]:
    """Line-breaking units and their joiner: words for English, characters for Chinese (no spaces between)."""
    return (text.split(), " ") if lang == "en" else (list(text.replace(" ", "")), "")


def _wrap(text: str, font: Any, max_width: int, lang: str) -> list[str] | None:
    """Greedy line breaking; ``None`` when a single unit is wider than ``max_width``."""
    units, joiner = _units(text, lang)
    lines: list[str] = []
    for unit in units:
        trial = f"{lines[-1]}{joiner}{unit}" if lines else unit
        if lines and font.getlength(trial) <= max_width:
            lines[-1] = trial
        elif font.getlength(unit) <= max_width:
            lines.append(unit)
        else:
            return None
    return lines


def fit_text(text: str, box: Box, lang: str = "en", font_path: str | Path | None = None, max_size: int = 64,
             min_size: int = 10, line_spacing: float = 1.25) -> tuple[list[str], int]:
    """(lines, font size): the largest size in [min_size, max_size] at which ``text``, wrapped, fits ``box``;
    ValueError when even ``min_size`` does not fit (notebook 14)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}.")
    if lang not in LABEL_TEXT:
        raise ValueError(f"lang must be one of {tuple(LABEL_TEXT)}, got {lang!r}.")
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}.")
    font_file = poster_font(text, font_path)
    width, height = box[2] - box[0], box[3] - box[1]
    for size in range(max_size, min_size - 1, -1):  # shrink until it fits
        lines = _wrap(text.strip(), _font(font_file, size), width, lang)
        if lines is not None and len(lines) * round(line_spacing * size) <= height:
            return lines, size
    raise ValueError(f"{text[:40]!r}{'...' if len(text) > 40 else ''} ({len(text)} characters) does not fit a "
                     f"{width}x{height} box even at font size {min_size}; shorten it (a slogan is a line or two, "
                     "see aigc_lib.apps.adcopy.length_ok) or make the poster larger.")


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], box: Box, font: Any, size: int, ink: tuple,
                line_spacing: float) -> None:
    """Lines centred horizontally in ``box``, the block centred vertically."""
    step = round(line_spacing * size)
    top = box[1] + (box[3] - box[1] - step * len(lines)) // 2
    for i, line in enumerate(lines):
        x = box[0] + (box[2] - box[0] - font.getlength(line)) / 2
        draw.text((x, top + i * step + (step - size) // 2), line, font=font, fill=ink)


def compose_poster(image: ImageLike, headline: str, slogan: str, lang: str = "en",
                   size: tuple[int, int] = (768, 1024), *, font_path: str | Path | None = None,
                   label_text: str | None = None, label_position: str = "top-right",
                   image_share: float = 0.64) -> Image.Image:
    """An RGB poster: ``image`` scaled to fit the top of the canvas, ``headline`` and ``slogan`` set below it in a
    font (never drawn by the image model), and the visible "AI生成"/"AI-generated" label on the image (notebook 14).

    ``image`` may be a PIL image, a uint8 array or a [-1, 1] tensor (:func:`to_pil_image`). Each text gets the
    largest font that fits its box (:func:`fit_text`); a text that does not fit even small raises ValueError, as
    does Chinese text on a system without a CJK font (:func:`poster_font` says how to install one).
    """
    for name, text in (("headline", headline), ("slogan", slogan)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty string, got {text!r}; a poster without its words is "
                             "just the picture.")
    layout = poster_layout(size, image_share)
    font_file = poster_font(headline + slogan, font_path)
    head_lines, head_size = fit_text(headline, layout.headline, lang, font_file, max_size=max(12, size[0] // 10))
    slogan_lines, slogan_size = fit_text(slogan, layout.slogan, lang, font_file,
                                         max_size=max(10, min(head_size - 2, size[0] // 16)))
    picture = to_pil_image(image).convert("RGB")
    left, top, right, bottom = layout.image
    scale = min((right - left) / picture.width, (bottom - top) / picture.height)
    picture = picture.resize((max(1, round(scale * picture.width)), max(1, round(scale * picture.height))),
                             Image.LANCZOS)
    x0, y0 = left + (right - left - picture.width) // 2, top + (bottom - top - picture.height) // 2
    label = label_text or LABEL_TEXT[lang]
    label_font = font_path if font_path is not None else (None if label.isascii() else find_label_font(label))
    picture = add_visible_label(picture, label, label_position, font_path=label_font)  # the explicit label
    poster = Image.new("RGB", layout.size, BACKGROUND)
    poster.paste(picture, (x0, y0))
    draw = ImageDraw.Draw(poster)
    _draw_lines(draw, head_lines, layout.headline, _font(font_file, head_size), head_size, HEADLINE_INK, 1.25)
    _draw_lines(draw, slogan_lines, layout.slogan, _font(font_file, slogan_size), slogan_size, SLOGAN_INK, 1.25)
    return poster


def save_poster(poster: ImageLike, path: str | Path, *, model: str, provider: str = "Willow & Kiln (course demo)",
                generator: str = "aigc_lib.apps.poster", extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``poster`` as a PNG with its implicit label (content ID: SHA-256 of the pixels) and return the path;
    :func:`read_png_label` reads the label back (notebook 14).

    ``model`` names the image model that drew the picture; ``extra`` (e.g. the headline and slogan) is stored
    with the note that the text was set by code.
    """
    label = ContentLabel.for_image(poster, generator=generator, model=model, provider=provider,
                                   extra={"text_set_by": "code (PIL), not the image model", **dict(extra or {})})
    return save_labeled_png(poster, path, label)
