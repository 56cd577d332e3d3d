"""Ad copy for the Willow & Kiln shop: product facts, labelled slogans, few-shot prompts and control checkers.

Every item of :mod:`aigc_lib.apps.catalog` has FACTS (kind, colour, material, two styles, price) in English and
Chinese. Slogans, written for this course from the templates below, are labelled by TONE (``playful``,
``premium``, ``calm``) and LENGTH band (``short``: <= 6 words / <= 10 汉字; ``long``: 7-20 words / 11-40 汉字).
Controllable generation is asked for, then MEASURED:

- :func:`slogan_prompt` writes a few-shot prompt for any language model; :func:`template_slogan` is the
  transparent offline baseline (fill a template of the requested tone and length with the item's facts).
- :func:`length_ok` counts words (English) or Han characters (Chinese) against the band; :func:`tone_score`
  counts the words of each tone's lexicon (:data:`TONE_LEXICON`); :func:`mentions_facts` says which facts appear;
  :func:`slogan_report` gives the rates over many slogans.
- :func:`slogan_split` holds out whole ITEMS, so a fine-tuned model is scored on products it never saw.

The checkers use the same lexicon the templates were written with, so the template baseline is the ceiling of
control by construction (its tone rate is ~1); what they are for is scoring a language model against it
(notebook 14).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aigc_lib.apps.catalog import ZH, Item

__all__ = ["LENGTHS", "LENGTH_BANDS", "SLOGAN_TEMPLATES", "TONES", "TONE_LEXICON", "Slogan", "facts_text",
           "length_ok", "make_slogans", "mentions_facts", "product_facts", "slogan_prompt", "slogan_report",
           "slogan_split", "template_slogan", "text_length", "tone_of", "tone_score"]

TONES = ("playful", "premium", "calm")
LENGTHS = ("short", "long")
LANGS = ("en", "zh")
LENGTH_BANDS = {"en": {"short": (1, 6), "long": (7, 20)},  # words, inclusive
                "zh": {"short": (1, 10), "long": (11, 40)}}  # Han characters (汉字), inclusive
TONE_NAMES_ZH = {"playful": "活泼有趣", "premium": "精致考究", "calm": "宁静舒缓"}  # for the Chinese prompt
# The words that mark each tone. None is (or contains, in Chinese) a catalogue attribute value, so an item's
# facts never count towards a tone: a "playful"-styled item does not make a slogan playful.
TONE_LEXICON = {
    "en": {"playful": ("fun", "joy", "hello", "happy", "smile", "party", "pop", "cheeky", "yay", "giggle"),
           "premium": ("crafted", "finest", "exquisite", "exquisitely", "refined", "timeless", "signature",
                       "heirloom", "elegant", "elegance", "luxury"),
           "calm": ("calm", "quiet", "gentle", "slow", "breathe", "rest", "peace", "still", "soft", "serene")},
    "zh": {"playful": ("好玩", "开心", "快乐", "乐趣", "惊喜", "派对", "哇", "嗨", "来啦"),
           "premium": ("匠心", "臻品", "精工", "典藏", "尊享", "雅致", "甄选", "非凡", "奢华"),
           "calm": ("宁静", "静心", "慢", "从容", "温柔", "舒缓", "静谧", "安然", "悠然")},
}
# Slogan templates written for this course: lang -> tone -> length -> templates. Slots: {kind} {Kind} {colour}
# {Colour} {material} {style} {price}; English slots take at most 2 words, so the bands hold for every item.
SLOGAN_TEMPLATES = {
    "en": {
        "playful": {
            "short": ("Hello, happy {kind}!", "{Kind}: pure fun!", "Your {kind}, your joy.",
                      "{Colour} {kind}, big smile!"),
            "long": ("Say hello to the {colour} {kind}: {style}, cheeky and ready to make every tea break a party!",
                     "Who knew a {material} {kind} could be this much fun? Grab one and smile.",
                     "Fun in {colour}: our {style} {kind} brings a happy little pop to your day."),
        },
        "premium": {
            "short": ("The finest {kind}.", "{Kind}, exquisitely crafted.", "Refined {material} {kind}.",
                      "Timeless {colour} elegance."),
            "long": ("Crafted from {material} in {colour}, this {style} {kind} is a timeless signature piece.",
                     "An exquisite {kind} in {colour} {material}, refined by hand to become an heirloom.",
                     "The finest {style} {kind}, at ${price}: elegant {material} for those who notice details."),
        },
        "calm": {
            "short": ("Slow down with {kind}.", "{Kind}. Breathe. Rest.", "Quiet {colour} mornings.",
                      "A gentle {material} {kind}."),
            "long": ("Breathe in, slow down: the {colour} {material} {kind} for quiet mornings and gentle evenings.",
                     "Our {style} {kind} keeps things soft and still, a little corner of peace in a busy day.",
                     "Let the {colour} {kind} set an unhurried pace; rest is part of the ritual."),
        },
    },
    "zh": {
        "playful": {
            "short": ("{kind}来啦，超好玩！", "嗨！{colour}{kind}", "开心就选{kind}", "{colour}乐趣，天天开心"),
            "long": ("哇，{colour}{kind}来报到！{style}风格，每天都是开心派对。",
                     "谁说{material}{kind}不能好玩？惊喜和乐趣，一起带回家。",
                     "{style}的{kind}，颜色是{colour}，让每一次喝茶都充满快乐和惊喜！"),
        },
        "premium": {
            "short": ("匠心{kind}，臻品之选", "典藏{material}{kind}", "雅致{kind}，尊享", "精工{colour}{kind}"),
            "long": ("匠心打造的{colour}{material}{kind}，{style}风格，值得典藏的臻品。",
                     "甄选{material}，精工细作，这款{kind}以{colour}诠释非凡雅致。",
                     "{style}{kind}，售价{price}美元，尊享匠心之美的甄选好物。"),
        },
        "calm": {
            "short": ("静心一刻，{kind}", "{colour}{kind}，慢生活", "宁静{material}{kind}", "悠然{kind}时光"),
            "long": ("在{colour}的{kind}旁慢下来，让宁静的清晨与温柔的夜晚从容相伴。",
                     "{style}风格的{material}{kind}，舒缓、静谧，给忙碌的一天留一角安然。",
                     "静心泡一壶茶，{colour}{kind}陪你悠然度过慢时光。"),
        },
    },
}
_EN_WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Slogan:
    """One labelled slogan: the item it sells, language, tone, length band, text and template index (notebook 14)."""

    item: Item
    lang: str
    tone: str
    length: str
    text: str
    template: int


def _check(lang: str, tone: str | None = None, length: str | None = None) -> None:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}.")
    if tone is not None and tone not in TONES:
        raise ValueError(f"tone must be one of {TONES}, got {tone!r}; add its words to TONE_LEXICON and its "
                         "templates to SLOGAN_TEMPLATES to support a new one.")
    if length is not None and length not in LENGTHS:
        raise ValueError(f"length must be one of {LENGTHS}, got {length!r}.")


def product_facts(item: Item, lang: str = "en") -> dict[str, str]:
    """The item's facts as they are written in ``lang``: kind, colour, material, style1, style2, price (notebook 14)."""
    _check(lang)
    values = {"kind": item.kind, "colour": item.colour, "material": item.material, "style1": item.styles[0],
              "style2": item.styles[1]}
    if lang == "zh":
        return {**{k: ZH[v] for k, v in values.items()}, "price": f"{item.price}美元"}
    return {**values, "price": f"${item.price}"}


def facts_text(item: Item, lang: str = "en") -> str:
    """A one-line fact sheet, e.g. ``"Celadon stoneware teapot; style: rustic, zen; price: $34."`` (notebook 14)."""
    f = product_facts(item, lang)
    if lang == "zh":
        return f"{f['colour']}{f['material']}{f['kind']}；风格：{f['style1']}、{f['style2']}；售价：{f['price']}。"
    return (f"{f['colour']} {f['material']} {f['kind']}".capitalize()
            + f"; style: {f['style1']}, {f['style2']}; price: {f['price']}.")


def _fill(template: str, item: Item, lang: str) -> str:
    f = product_facts(item, lang)
    slots = {"kind": f["kind"], "colour": f["colour"], "material": f["material"], "style": f["style1"],
             "price": item.price, "Kind": f["kind"].capitalize(), "Colour": f["colour"].capitalize()}
    return template.format(**slots)


def template_slogan(item: Item, tone: str, length: str, lang: str = "en", seed: int = 0) -> str:
    """The offline baseline: one template of the requested tone and length, filled with the item's facts;
    which template is fixed by ``(seed, item.id)`` (notebook 14)."""
    _check(lang, tone, length)
    templates = SLOGAN_TEMPLATES[lang][tone][length]
    pick = int(np.random.default_rng([seed, item.id]).integers(len(templates)))
    return _fill(templates[pick], item, lang)


def make_slogans(items: Sequence[Item], langs: Sequence[str] = LANGS, per_cell: int = 2,
                 seed: int = 0) -> list[Slogan]:
    """``per_cell`` distinct labelled slogans per item, language, tone and length band (notebook 14)."""
    rng = np.random.default_rng(seed)
    out = []
    for item in items:
        for lang in langs:
            _check(lang)
            for tone in TONES:
                for length in LENGTHS:
                    templates = SLOGAN_TEMPLATES[lang][tone][length]
                    if not 1 <= per_cell <= len(templates):
                        raise ValueError(f"per_cell must lie in [1, {len(templates)}] (the templates of "
                                         f"{lang}/{tone}/{length}), got {per_cell}.")
                    for t in rng.choice(len(templates), size=per_cell, replace=False):
                        out.append(Slogan(item, lang, tone, length, _fill(templates[t], item, lang), int(t)))
    return out


def slogan_split(slogans: Sequence[Slogan], test_fraction: float = 0.2,
                 seed: int = 0) -> tuple[list[Slogan], list[Slogan]]:
    """(train, test) split BY ITEM: every slogan of a held-out item is in test, so test products are never seen
    in training (notebook 14)."""
    ids = np.array(sorted({s.item.id for s in slogans}))
    n_test = round(test_fraction * len(ids))
    if not 0 < n_test < len(ids):
        raise ValueError(f"test_fraction={test_fraction} of {len(ids)} items leaves {n_test} test items; both "
                         "splits need at least one item.")
    test_ids = set(np.random.default_rng(seed).permutation(ids)[:n_test].tolist())
    return ([s for s in slogans if s.item.id not in test_ids], [s for s in slogans if s.item.id in test_ids])


def slogan_prompt(item: Item, tone: str, length: str, lang: str = "en", shots: Sequence[Slogan] = ()) -> str:
    """A few-shot prompt for any language model: instruction, ``shots`` as worked examples, then the item's facts
    and an open ``Slogan:`` line to continue (notebook 14).

    Shots must be in ``lang`` and about OTHER items (a shot of the same item would hand the model its answer).
    """
    _check(lang, tone, length)
    for s in shots:
        if s.lang != lang:
            raise ValueError(f"a {s.lang!r} shot in a {lang!r} prompt; pick shots in the prompt's language.")
        if s.item.id == item.id:
            raise ValueError(f"a shot is about item {item.id}, the item asked for: it would leak the answer; take "
                             "shots from the training split (slogan_split).")
    (_, short_max), (long_min, long_max) = LENGTH_BANDS[lang]["short"], LENGTH_BANDS[lang]["long"]
    if lang == "zh":
        size = {"short": f"短（不超过{short_max}个汉字）", "long": f"长（{long_min}到{long_max}个汉字）"}
        head = "为 Willow & Kiln 小店的商品写一句广告语。只使用给出的商品信息。\n\n"
        block = "商品：{facts}\n语气：{tone}\n长度：{size}\n广告语：{text}"
        tone_name = TONE_NAMES_ZH
    else:
        size = {"short": f"short (at most {short_max} words)", "long": f"long ({long_min} to {long_max} words)"}
        head = "Write an advertising slogan for a product of the Willow & Kiln shop. Use only the facts given.\n\n"
        block = "Product: {facts}\nTone: {tone}\nLength: {size}\nSlogan: {text}"
        tone_name = {t: t for t in TONES}
    examples = [block.format(facts=facts_text(s.item, lang), tone=tone_name[s.tone], size=size[s.length],
                             text=s.text) for s in shots]
    query = block.format(facts=facts_text(item, lang), tone=tone_name[tone], size=size[length], text="").rstrip()
    return head + "".join(e + "\n\n" for e in examples) + query


def text_length(text: str, lang: str = "en") -> int:
    """Words (English: runs of letters and digits, "tea-time" is one) or Han characters (Chinese) (notebook 14)."""
    _check(lang)
    return len(_EN_WORD.findall(text)) if lang == "en" else len(_HAN.findall(text))


def length_ok(text: str, length: str, lang: str = "en") -> bool:
    """Whether ``text`` lies in the ``length`` band of :data:`LENGTH_BANDS` (notebook 14)."""
    _check(lang, length=length)
    low, high = LENGTH_BANDS[lang][length]
    return low <= text_length(text, lang) <= high


def _tone_hits(text: str, lang: str) -> dict[str, int]:
    """How many lexicon words of each tone occur: whole words in English, substrings in Chinese."""
    if lang == "en":
        words = [w.lower() for w in _EN_WORD.findall(text)]
        return {t: sum(w in TONE_LEXICON["en"][t] for w in words) for t in TONES}
    return {t: sum(text.count(w) for w in TONE_LEXICON["zh"][t]) for t in TONES}


def tone_score(text: str, tone: str, lang: str = "en") -> float:
    """Share of the tone-marker words in ``text`` that belong to ``tone``'s lexicon (notebook 14).

    ``hits(tone) / sum over tones of hits``, counting :data:`TONE_LEXICON` words (English: whole words, case
    ignored; Chinese: substrings). 1.0: only that tone's markers; 0.0: none of them, or no marker at all. A
    lexicon score is transparent and cheap but blind to tone carried without its words ("Tea o'clock!").
    """
    _check(lang, tone)
    hits = _tone_hits(text, lang)
    total = sum(hits.values())
    return hits[tone] / total if total else 0.0


def tone_of(text: str, lang: str = "en") -> str | None:
    """The tone with strictly the most marker words in ``text``; ``None`` on a tie or no marker (notebook 14)."""
    _check(lang)
    hits = _tone_hits(text, lang)
    best = max(hits.values())
    winners = [t for t in TONES if hits[t] == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def mentions_facts(text: str, item: Item, lang: str = "en") -> tuple[str, ...]:
    """Names of the item's facts (:func:`product_facts`) that ``text`` states, e.g. ``("kind", "colour")``
    (notebook 14).

    English: whole words, case ignored. Chinese: substrings, longest fact first and each match masked, so the
    material 瓷 is not found inside the colour 青瓷绿.
    """
    facts = product_facts(item, lang)
    found = set()
    if lang == "en":
        for name, value in facts.items():
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text, flags=re.IGNORECASE):
                found.add(name)
    else:
        rest = text.replace(f"{item.price}元", f"{item.price}美元")
        for name, value in sorted(facts.items(), key=lambda kv: -len(kv[1])):
            if value in rest:
                found.add(name)
                rest = rest.replace(value, "\u25a1" * len(value))  # masked: shorter facts cannot match inside it
    return tuple(name for name in facts if name in found)


def slogan_report(texts: Sequence[str], items: Sequence[Item], tones: Sequence[str], lengths: Sequence[str],
                  lang: str = "en") -> dict[str, float]:
    """Control rates over slogans asked for with ``tones`` and ``lengths`` (notebook 14).

    ``length_ok``: share in the requested band; ``tone_ok``: share whose :func:`tone_of` is the requested tone;
    ``tone_score``: mean :func:`tone_score`; ``names_kind``: share that name the product's kind; ``facts``: mean
    number of facts stated; ``n``: how many slogans.
    """
    n = len(texts)
    if n == 0 or not n == len(items) == len(tones) == len(lengths):
        raise ValueError(f"need as many texts, items, tones and lengths, at least one; got {n}, {len(items)}, "
                         f"{len(tones)}, {len(lengths)}.")
    facts = [mentions_facts(t, i, lang) for t, i in zip(texts, items)]
    return {"n": float(n),
            "length_ok": float(np.mean([length_ok(t, b, lang) for t, b in zip(texts, lengths)])),
            "tone_ok": float(np.mean([tone_of(t, lang) == tone for t, tone in zip(texts, tones)])),
            "tone_score": float(np.mean([tone_score(t, tone, lang) for t, tone in zip(texts, tones)])),
            "names_kind": float(np.mean(["kind" in f for f in facts])),
            "facts": float(np.mean([len(f) for f in facts]))}
