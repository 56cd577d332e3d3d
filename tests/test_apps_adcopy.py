"""Ad copy (slogans, prompts, control checkers) and posters with set text and content labels (notebook 14)."""
from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest
from PIL import Image, ImageFont

from aigc_lib.apps import poster as poster_module
from aigc_lib.apps.adcopy import (
    LENGTHS,
    SLOGAN_TEMPLATES,
    TONE_LEXICON,
    TONES,
    length_ok,
    make_slogans,
    mentions_facts,
    product_facts,
    slogan_prompt,
    slogan_report,
    slogan_split,
    template_slogan,
    text_length,
    tone_of,
    tone_score,
)
from aigc_lib.apps.catalog import ZH, make_catalog
from aigc_lib.apps.poster import BACKGROUND, compose_poster, fit_text, poster_layout, save_poster
from aigc_lib.provenance.labels import find_label_font, pixel_sha256, read_png_label

ITEMS = make_catalog(n_items=60, n_new=10, seed=0)


def test_tone_lexicon_shares_no_word_with_the_catalogue():
    """A fact (a "playful" style, the "premium" band) must never count as a tone marker."""
    en_vocab = {w for value in ZH for w in value.split()}
    zh_vocab = set(ZH.values())
    for tone in TONES:
        assert not set(TONE_LEXICON["en"][tone]) & en_vocab
        assert not [(w, v) for w in TONE_LEXICON["zh"][tone] for v in zh_vocab if w in v or v in w]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_template_meets_its_band_and_its_tone_and_no_other(lang):
    for item in ITEMS:
        f = product_facts(item, lang)
        slots = {"kind": f["kind"], "Kind": f["kind"].capitalize(), "colour": f["colour"], "material": f["material"],
                 "Colour": f["colour"].capitalize(), "style": f["style1"], "price": item.price}
        for tone in TONES:
            for length in LENGTHS:
                for template in SLOGAN_TEMPLATES[lang][tone][length]:
                    text = template.format(**slots)
                    assert length_ok(text, length, lang) and tone_of(text, lang) == tone, text
                    assert all(tone_score(text, t, lang) == 0.0 for t in TONES if t != tone), text
                assert template_slogan(item, tone, length, lang, seed=5) in [
                    t.format(**slots) for t in SLOGAN_TEMPLATES[lang][tone][length]]


def test_length_counts_words_or_han_characters():
    assert text_length("Tea-time, tea time!", "en") == 3  # "tea-time" is one word, punctuation none
    assert length_ok("one two three four five six", "short") and not length_ok("a b c d e f g", "short")
    assert length_ok("a b c d e f g", "long") and not length_ok("", "short")
    assert text_length("AI生成：好茶！", "zh") == 4  # Latin letters and punctuation are not 汉字
    assert length_ok("一二三四五六七八九十", "short", "zh") and not length_ok("一二三四五六七八九十百", "short", "zh")
    assert length_ok("一二三四五六七八九十百", "long", "zh")
    with pytest.raises(ValueError, match="length must be"):
        length_ok("hi", "medium")


def test_tone_score_is_the_share_of_marker_words():
    assert tone_score("Fun, quiet fun.", "playful") == pytest.approx(2 / 3)
    assert tone_score("Fun, quiet fun.", "calm") == pytest.approx(1 / 3)
    assert tone_of("Fun, quiet fun.") == "playful" and tone_of("fun and calm") is None  # a tie names no tone
    assert tone_score("A teapot.", "calm") == 0.0 and tone_of("A teapot.") is None
    assert tone_score("FUNNY funfair", "playful") == 0.0  # whole words only in English
    assert tone_score("匠心之作，宁静致远，慢慢来", "calm", "zh") == pytest.approx(3 / 4)  # 宁静 + 慢 twice
    with pytest.raises(ValueError, match="tone must be"):
        tone_score("x", "angry")


def test_mentions_facts_masks_longer_facts_in_chinese():
    item = dataclasses.replace(ITEMS[0], kind="mug", colour="celadon", material="porcelain", price=12,
                               styles=("zen", "modern"))
    assert mentions_facts("青瓷绿马克杯，禅意。", item, "zh") == ("kind", "colour", "style1")  # 瓷 sits in 青瓷绿
    assert mentions_facts("青瓷绿瓷马克杯，12元", item, "zh") == ("kind", "colour", "material", "price")
    assert mentions_facts("A Celadon MUG for $12, modern.", item, "en") == ("kind", "colour", "style2", "price")
    assert mentions_facts("A mugful of porcelainish joy", item, "en") == ()


def test_slogan_split_holds_out_whole_items():
    slogans = make_slogans(ITEMS, per_cell=2, seed=1)
    assert len(slogans) == len(ITEMS) * 2 * len(TONES) * len(LENGTHS) * 2
    train, test = slogan_split(slogans, test_fraction=0.25, seed=3)
    train_ids, test_ids = {s.item.id for s in train}, {s.item.id for s in test}
    assert not train_ids & test_ids and len(test_ids) == 15 and len(train) + len(test) == len(slogans)
    assert [s.text for s in slogan_split(slogans, 0.25, seed=3)[1]] == [s.text for s in test]
    assert {s.item.id for s in slogan_split(slogans, 0.25, seed=4)[1]} != test_ids
    with pytest.raises(ValueError, match="both splits"):
        slogan_split(slogans, test_fraction=0.0)


def test_prompt_holds_the_shots_and_refuses_leaks():
    train, test = slogan_split(make_slogans(ITEMS, seed=0), seed=0)
    shots = [s for s in train if s.lang == "en" and s.tone == "premium"][:3]
    item = test[0].item
    prompt = slogan_prompt(item, "premium", "short", "en", shots)
    assert all(s.text in prompt for s in shots) and prompt.endswith("Slogan:")
    assert prompt.count("Product:") == 4 and item.kind in prompt.split("\n\n")[-1]
    zh = slogan_prompt(item, "calm", "long", "zh", [s for s in train if s.lang == "zh"][:2])
    assert zh.endswith("广告语：") and "长（11到40个汉字）" in zh and ZH[item.kind] in zh
    with pytest.raises(ValueError, match="leak"):
        slogan_prompt(shots[0].item, "calm", "short", "en", shots)
    with pytest.raises(ValueError, match="language"):
        slogan_prompt(item, "calm", "short", "zh", shots)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_scores_the_template_baseline_and_catches_the_wrong_tone(lang):
    _, test = slogan_split(make_slogans(ITEMS, [lang], per_cell=1), seed=0)
    items, tones, lengths = [s.item for s in test], [s.tone for s in test], [s.length for s in test]
    texts = [template_slogan(i, t, b, lang, seed=7) for i, t, b in zip(items, tones, lengths)]
    report = slogan_report(texts, items, tones, lengths, lang)
    assert report["length_ok"] == 1.0 and report["tone_ok"] == 1.0 and report["tone_score"] == 1.0
    assert report["names_kind"] == np.mean([product_facts(i, lang)["kind"].lower() in t.lower()
                                            for t, i in zip(texts, items)])
    shifted = [TONES[(TONES.index(t) + 1) % 3] for t in tones]  # asked for one tone, given another
    swapped = ["long" if b == "short" else "short" for b in lengths]
    wrong = slogan_report(texts, items, shifted, swapped, lang)
    assert wrong["tone_ok"] == 0.0 and wrong["length_ok"] == 0.0
    with pytest.raises(ValueError, match="as many"):
        slogan_report(texts, items[:-1], tones, lengths, lang)


# ---- posters ------------------------------------------------------------------------------------------------

GREY = np.full((96, 128, 3), 150, np.uint8)  # a flat synthetic "generated" image: any drawn pixel shows


def _changed(poster: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Share of pixels in ``box`` that differ from the poster background."""
    region = np.asarray(poster.crop(box), dtype=np.int64)
    return float((np.abs(region - np.array(BACKGROUND)).sum(-1) > 0).mean())


def test_poster_sets_text_where_the_layout_says_and_labels_the_image():
    layout = poster_layout((384, 512))
    boxes = [layout.image, layout.headline, layout.slogan]
    for a, b in itertools.pairwise(boxes):
        assert a[3] <= b[1] and 0 <= a[0] < a[2] <= 384 and b[3] <= 512  # stacked, inside the canvas
    poster = compose_poster(GREY, "Celadon teapot", "Slow down with teapot.", "en", size=(384, 512))
    assert poster.size == (384, 512) and poster.mode == "RGB"
    assert _changed(poster, layout.headline) > 0.02 and _changed(poster, layout.slogan) > 0.01  # ink is there
    assert _changed(poster, (0, 0, 384, layout.image[1])) == 0.0  # the top margin stays blank
    picture = np.asarray(poster.crop(layout.image))
    grey = (np.abs(picture.astype(int) - 150).sum(-1) == 0).mean()  # 128x96 scaled into 346x309: 0.84 of the box
    blank = 1 - _changed(poster, layout.image)  # the letterbox bands
    assert grey > 0.8 and 0.12 < blank < 0.2 and grey + blank > 0.97  # the image, letterboxed, and...
    assert (picture.sum(-1) == 0).sum() > 50  # ...with the dark box of the visible label (over a light image)
    other = compose_poster(GREY, "Rust red kettle", "Slow down with teapot.", "en", size=(384, 512))
    assert np.any(np.asarray(other.crop(layout.headline)) != np.asarray(poster.crop(layout.headline)))


def test_saved_poster_reads_back_its_label(tmp_path):
    poster = compose_poster(GREY, "Indigo mug", "Hello, happy mug!", "en", size=(256, 320))
    path = save_poster(poster, tmp_path / "mug.png", model="toy-diffusion", extra={"headline": "Indigo mug"})
    label = read_png_label(path)
    assert label is not None and label.ai_generated and label.model == "toy-diffusion"
    assert label.extra["headline"] == "Indigo mug" and "code" in label.extra["text_set_by"]
    with Image.open(path) as img:
        assert label.content_id == pixel_sha256(img.convert("RGB")) == pixel_sha256(poster)
    with pytest.raises(ValueError, match=r"\.png"):
        save_poster(poster, tmp_path / "mug.jpg", model="toy-diffusion")


def test_chinese_needs_a_cjk_font_or_says_how_to_install_one(monkeypatch):
    if find_label_font("AI生成青瓷绿茶壶静心一刻") is not None:
        poster = compose_poster(GREY, "青瓷绿茶壶", "静心一刻，茶壶", "zh", size=(256, 320))
        layout = poster_layout((256, 320))
        assert _changed(poster, layout.headline) > 0.02 and _changed(poster, layout.slogan) > 0.01
    monkeypatch.setattr(poster_module, "find_label_font", lambda text: None)
    with pytest.raises(ValueError, match="apt-get install fonts-noto-cjk"):
        compose_poster(GREY, "青瓷绿茶壶", "静心一刻", "zh", size=(256, 320))


def test_text_shrinks_to_fit_and_too_much_text_is_an_error():
    box = (0, 0, 300, 80)
    short_lines, short_size = fit_text("Fun!", box, max_size=48)
    long_text = "Breathe in, slow down: the rust red cast iron kettle for quiet mornings and gentle evenings."
    lines, size = fit_text(long_text, box, max_size=48)
    assert short_lines == ["Fun!"] and short_size == 48 and size < short_size and len(lines) > 1
    font = ImageFont.load_default(size=size)
    assert all(font.getlength(line) <= 300 for line in lines) and len(lines) * round(1.25 * size) <= 80
    assert re.sub(r"\s+", " ", " ".join(lines)) == long_text  # nothing dropped by wrapping
    with pytest.raises(ValueError, match="does not fit"):
        fit_text("word " * 400, box)
    with pytest.raises(ValueError, match="slogan must be a non-empty"):
        compose_poster(GREY, "Mug", "   ", "en", size=(256, 320))
