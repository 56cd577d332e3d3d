"""Content labels (chapter 11): the PNG metadata label round trip, its loss on re-encoding, the visible label, and
model cards that survive save/load offline."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from matplotlib import font_manager
from PIL import Image, ImageChops
from PIL.PngImagePlugin import PngInfo

from aigc_lib.provenance import (
    FALLBACK_LABEL_TEXT,
    LABEL_JSON_KEY,
    ContentLabel,
    add_visible_label,
    find_label_font,
    model_card,
    pixel_sha256,
    read_png_label,
    save_labeled_png,
    strip_metadata,
    to_pil_image,
)

EXTRA = {"标题": "一只猫的肖像", "prompt": "水墨画风格的猫", "steps": 50, "guidance": 7.5,
         "tags": ["猫", "AI"]}


def _noise(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)  # (H, W, 3)


def _label(**kw) -> ContentLabel:
    return ContentLabel(generator="aigc_lib DCGAN sampler", model="dcgan-faces-64", provider="课程示例提供者",
                        extra=EXTRA, **kw)


def test_label_dict_round_trip_and_defaults():
    a, b = _label(), _label()
    assert a.content_id != b.content_id and a.content_id.startswith("uuid4:")  # fresh id per item
    assert a.to_dict()["AIGC"] == "true" and a.created.endswith("+00:00")
    assert ContentLabel.from_dict(a.to_dict()) == a
    assert ContentLabel.from_dict(json.loads(json.dumps(a.to_dict(), ensure_ascii=False))) == a


@pytest.mark.parametrize("kind", ["pil", "numpy", "tensor"])
def test_png_label_round_trip_is_exact(tmp_path, kind):
    pixels = _noise()
    image = {"pil": Image.fromarray(pixels), "numpy": pixels,
             "tensor": torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1}[kind]  # (3, H, W) in [-1, 1]
    label = ContentLabel.for_image(image, generator="g", model="m", provider="p", extra=EXTRA)
    path = save_labeled_png(image, tmp_path / "x.png", label)
    back = read_png_label(path)
    assert back == label and back.extra["标题"] == "一只猫的肖像"
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img), pixels)  # the tensor mapping inverts x = u / 127.5 - 1 exactly
        assert img.text["provider"] == "p" and img.text["AIGC"] == "true"  # per-field chunks for other tools
    assert back.content_id == pixel_sha256(Image.open(path))  # the content ID still matches the pixels


def test_tensor_conversion_clamps_and_rounds():
    x = torch.tensor([[[-2.0, -1.0, 0.0, 1.0, 3.0]]])  # (1, 1, 5)
    assert np.asarray(to_pil_image(x)).tolist() == [[0, 0, 128, 255, 255]]  # round((x + 1) * 127.5)


def test_unlabelled_png_gives_none_and_edited_label_is_caught(tmp_path):
    Image.fromarray(_noise()).save(tmp_path / "plain.png")
    assert read_png_label(tmp_path / "plain.png") is None
    label = _label()
    path = save_labeled_png(_noise(), tmp_path / "x.png", label)
    with Image.open(path) as img:  # rewrite one field chunk, keep the JSON chunk
        info = PngInfo()
        for k, v in img.text.items():
            info.add_itxt(k, "someone else" if k == "provider" else v)
        img.save(tmp_path / "edited.png", pnginfo=info)
    with pytest.raises(ValueError, match="edited after labelling"):
        read_png_label(tmp_path / "edited.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_strip_metadata_loses_the_label(tmp_path, suffix):
    pixels = _noise()
    path = save_labeled_png(pixels, tmp_path / "x.png", _label())
    assert read_png_label(path) is not None  # the baseline: the label is there before re-encoding
    out = strip_metadata(path, tmp_path / f"y{suffix}")
    assert read_png_label(out) is None
    with Image.open(out) as img:
        kept = np.asarray(img).astype(int)
    if suffix == ".png":
        assert np.array_equal(kept, pixels)  # same pixels, no label: the label was only in the metadata
    else:
        assert LABEL_JSON_KEY not in img.info and np.abs(kept - pixels).mean() > 0  # JPEG re-compressed too


@pytest.mark.parametrize("position", ["bottom-right", "bottom-left", "top-right", "top-left"])
def test_visible_label_changes_only_its_corner(position):
    pixels = _noise(seed=1)
    original = Image.fromarray(pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CJK fallback warning has its own test
        labelled = add_visible_label(original, position=position)
    assert np.array_equal(np.asarray(original), pixels)  # the input is untouched
    x0, y0, x1, y1 = ImageChops.difference(labelled, original).getbbox()
    w, h = original.size
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    assert (centre_x > w / 2) == position.endswith("right") and (centre_y > h / 2) == position.startswith("bottom")
    gap_x = w - x1 if position.endswith("right") else x0
    gap_y = h - y1 if position.startswith("bottom") else y0
    assert gap_x <= 0.05 * h and gap_y <= 0.05 * h  # it sits in the corner, a small margin from the edges
    assert (x1 - x0) * (y1 - y0) < 0.25 * w * h  # a corner label: every pixel outside this box is unchanged
    changed = np.any(np.asarray(labelled) != pixels, axis=2)  # (H, W)
    assert changed[y0:y1, x0:x1].mean() > 0.9  # a solid box over noise changes nearly every pixel in it


def test_chinese_label_uses_a_cjk_font_or_warns_and_falls_back():
    image = Image.fromarray(np.full((96, 128, 3), 200, np.uint8))
    font = find_label_font("AI生成")
    if font is None:
        with pytest.warns(UserWarning, match=FALLBACK_LABEL_TEXT):
            chinese = add_visible_label(image)
        english = add_visible_label(image, text=FALLBACK_LABEL_TEXT)
        assert np.array_equal(np.asarray(chinese), np.asarray(english))  # it drew the fallback text, no tofu
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            chinese = add_visible_label(image)
        assert not np.array_equal(np.asarray(chinese), np.asarray(add_visible_label(image, text="AI-generated")))


def test_a_last_resort_font_is_not_taken_for_cjk_glyphs():
    last_resort = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "LastResortHE-Regular.ttf"
    if not last_resort.is_file():
        pytest.skip("this matplotlib ships no LastResortHE font")
    assert find_label_font("AI生成") != last_resort  # it "covers" every character with one box per block: tofu
    with pytest.raises(ValueError, match="no glyphs"):
        add_visible_label(_noise(), font_path=last_resort)


def test_visible_label_refuses_fonts_without_glyphs_and_images_too_small():
    latin_only = font_manager.findfont("DejaVu Sans")
    image = _noise()
    add_visible_label(image, text="AI-generated", font_path=latin_only)  # the font has these glyphs
    with pytest.raises(ValueError, match="no glyphs"):
        add_visible_label(image, text="AI生成", font_path=latin_only)
    with pytest.raises(ValueError, match="does not fit"):
        add_visible_label(_noise(12, 12), text="AI-generated")
    with pytest.raises(ValueError, match="position"):
        add_visible_label(image, position="middle")


@pytest.mark.parametrize("bad", [
    {"provider": ""}, {"created": "yesterday"}, {"created": "2025-09-01T12:00:00"},
    {"created": "2025-09-01T20:00:00+08:00"}, {"extra": {"x": object()}},
])
def test_bad_labels_say_what_to_do(bad):
    fields = {"generator": "g", "model": "m", "provider": "p", **bad}
    with pytest.raises(ValueError):
        ContentLabel(**fields)


def test_bad_images_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="x\\[0\\]"):
        to_pil_image(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="astype"):
        to_pil_image(np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=".png"):
        save_labeled_png(_noise(), tmp_path / "x.jpg", _label())


def test_model_card_renders_and_round_trips_offline(tmp_path):
    evaluation = {"FID": 23.517, "KID x 1000": 4.25, "samples": 10000}
    card = model_card("dcgan-faces-64", description="A DCGAN trained in chapter 4.", license="mit",
                      training_data="CelebA 64x64, 202,599 faces.", intended_use="Teaching only.",
                      limitations="Faces only; biased like its data.", evaluation=evaluation)
    text = str(card)
    for needle in ("license: mit", "aigc-course", "| FID | 23.517 |", "| KID x 1000 | 4.25 |", "| samples | 10000 |",
                   "CelebA 64x64", "Faces only", "AI生成"):
        assert needle in text, needle
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.license == "mit" and "aigc-course" in loaded.data.tags
    assert loaded.data.model_name == "dcgan-faces-64" and loaded.text == card.text
    with pytest.raises(ValueError, match="finite numbers"):
        model_card("m", description="d", license="mit", training_data="t", intended_use="i", limitations="l",
                   evaluation={"FID": "good"})
    with pytest.raises(ValueError, match="limitations"):
        model_card("m", description="d", license="mit", training_data="t", intended_use="i", limitations=" ",
                   evaluation={"FID": 1.0})
