"""Text metrics: BLEU, ROUGE and BERTScore against references, distinct-n and self-BLEU for diversity, bits
per byte for language models, in English and Chinese (notebooks 04, 05, 06, 10).

Well-kept implementations do the counting: sacrebleu for BLEU, torchmetrics for ROUGE and BERTScore. Chinese
has no spaces between words, so every metric that splits on spaces needs ``lang="zh"``: sacrebleu's default
"13a" tokeniser scores a close Chinese paraphrase 0.0 and torchmetrics' default ROUGE normaliser deletes every
Chinese character. A ``lang`` that disagrees with the texts raises instead of returning such a silent 0.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any

from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.runtime import is_online

__all__ = [
    "bert_score", "bits_per_byte", "bits_per_byte_from_text", "bleu", "bleu_signature", "detect_language",
    "distinct_n", "rouge", "self_bleu",
]

LANGS = ("en", "zh")
ZH_TOKENIZERS = ("char", "jieba")
# A text is Chinese when at least this share of its letters are CJK ideographs. Not 0.5: a Chinese word is 1-2
# characters and an English one ~5 letters, so "我用PyTorch训练了GPT模型" is Chinese at a 47% share.
ZH_SHARE = 0.3
# CJK Unified Ideographs (+ Extension A, compatibility ideographs, Extensions B-F)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_ZH_NOT_KEPT = re.compile(f"[^{_CJK}a-z0-9]+")   # punctuation, full-width or not, and spaces
_ZH_CHAR_TOKEN = re.compile(f"[{_CJK}]|[a-z0-9]+")  # one token per ideograph, one per Latin word or number
# BERTScore's layer choice for its default models (bert_score's model2layers table, Zhang et al. 2020)
_BERT_MODELS = {"en": ("roberta-large", 17), "zh": ("bert-base-chinese", 8)}


# ------------------------------------------------------------------------------------------ language
def detect_language(text: str) -> str:
    """``"zh"`` when at least 30% of the letters in `text` are CJK ideographs, else ``"en"`` (notebook 05)."""
    share = _cjk_share(text)
    return "zh" if share is not None and share >= ZH_SHARE else "en"


def _cjk_share(text: str) -> float | None:
    """CJK ideographs / all letters (Python's isalpha: Latin, CJK, ...); None when the text has no letters."""
    letters = sum(c.isalpha() for c in text)
    return len(_CJK_CHAR.findall(text)) / letters if letters else None


def _check_lang(texts: Sequence[str], lang: str, what: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    share = _cjk_share(" ".join(texts))
    if share is None:  # digits or punctuation only: nothing to tell the languages apart by
        return
    detected = "zh" if share >= ZH_SHARE else "en"
    if detected != lang:
        names = {"en": "English (or another language written with spaces)", "zh": "Chinese"}
        raise ValueError(f"lang={lang!r} but the {what} look {names[detected]} ({share:.0%} of their letters "
                         f"are CJK): pass lang={detected!r}, or the score is meaningless (BLEU and ROUGE "
                         "give 0.0 when Chinese is split on spaces).")


def _check_texts(texts: Sequence[str], what: str, at_least: int = 1, allow_empty: bool = False) -> None:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got one string: wrap it as [{texts[:20]!r}...].")
    if len(texts) < at_least:
        raise ValueError(f"need at least {at_least} {what}, got {len(texts)}.")
    if not all(isinstance(t, str) for t in texts):
        bad = next(t for t in texts if not isinstance(t, str))
        raise TypeError(f"{what} must be strings, got a {type(bad).__name__}: decode token ids first.")
    if not allow_empty and not any(t.strip() for t in texts):
        raise ValueError(f"every one of the {len(texts)} {what} is empty: there is nothing to score (check "
                         "that the texts were decoded and not cut at the first token).")


def _check_pairs(hypotheses: Sequence[Any], references: Sequence[Any]) -> None:
    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(seq, str):
            raise TypeError(f"{name} must be a list with one entry per pair, got one string: wrap it in [].")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"need one reference per hypothesis and at least one pair, got {len(hypotheses)} "
                         f"hypotheses and {len(references)} references.")
    if not all(isinstance(h, str) for h in hypotheses):
        raise TypeError("hypotheses must be strings: decode token ids first.")
    if not any(h.strip() for h in hypotheses):  # a model can answer nothing: a true score of 0, but say so
        warnings.warn(f"all {len(hypotheses)} hypotheses are empty, so every overlap score is 0: check the "
                      "decoding (a stop string hit at the first token?).", stacklevel=3)


def _reference_lists(references: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """One list of references per hypothesis, whether each was given as one string or as a list."""
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    _check_texts([r for rs in refs for r in rs], "references")
    return refs


# ------------------------------------------------------------------------------------------ tokenising
def _zh_normalize(text: str) -> str:
    """Lower-case; keep CJK ideographs, Latin letters and digits; everything else becomes one space."""
    return _ZH_NOT_KEPT.sub(" ", text.lower())


def _zh_tokens(text: str, tokenizer: str = "char") -> list[str]:
    """Chinese tokens of a normalised text: one per character, or jieba's words; Latin words kept whole."""
    if tokenizer == "char":
        return _ZH_CHAR_TOKEN.findall(text)
    return [w for w in _jieba().lcut(text) if w.strip()]


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict..." banner in every notebook
    return jieba


def _check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in ZH_TOKENIZERS:
        raise ValueError(f"tokenizer must be 'char' (one token per Chinese character) or 'jieba' (words), "
                         f"got {tokenizer!r}.")


# ------------------------------------------------------------------------------------------ diversity
def distinct_n(texts: Sequence[str], n: int = 2, lang: str = "en", tokenizer: str = "char") -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams over the texts, in (0, 1], 1 = no repeats
    (notebook 04). English n-grams are of space-separated words; Chinese ones of characters or jieba words.
    Texts shorter than n tokens add no n-grams; 0.0 when no text has n tokens (a model that answers nothing
    has no diversity to measure, e.g. greedy decoding that stops at once)."""
    _check_texts(texts, "texts", allow_empty=True)
    _check_tokenizer(tokenizer)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (1 = unigrams), got {n!r}.")
    _check_lang(texts, lang, "texts")
    split = str.split if lang == "en" else (lambda t: _zh_tokens(_zh_normalize(t), tokenizer))
    grams = [tuple(tokens[i:i + n]) for tokens in map(split, texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: Sequence[str], lang: str = "en") -> float:
    """Self-BLEU (Zhu et al., 2018, Texygen): mean sentence BLEU (0-100) of each text against all the others
    as references; higher = less diverse, 100 = all texts identical (notebook 05).

    sacrebleu's sentence BLEU (exponential smoothing, effective order), so the numbers are close to but not
    equal to Texygen's NLTK ones. Costs N sentence scores against N - 1 references: subsample large sets.
    """
    from sacrebleu.metrics import BLEU

    _check_texts(texts, "texts", at_least=2)
    _check_lang(texts, lang, "texts")
    metric = BLEU(tokenize=_bleu_tokenize(lang), effective_order=True)
    scores = [metric.sentence_score(text, [t for j, t in enumerate(texts) if j != i]).score
              for i, text in enumerate(texts)]
    return sum(scores) / len(scores)


# ------------------------------------------------------------------------------------------ references
def _bleu_tokenize(lang: str) -> str:
    return {"en": "13a", "zh": "zh"}[lang]  # "zh": one token per Chinese character, 13a for the rest


def bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]],
         lang: str = "en") -> float:
    """Corpus BLEU (Papineni et al., 2002), 0-100 (100 = every hypothesis equals a reference), by sacrebleu:
    "13a" tokens for English, one per character for Chinese (``lang="zh"``); one reference or a list of them
    per hypothesis (notebook 05). Print :func:`bleu_signature` beside the score to say how it was computed."""
    from sacrebleu.metrics import BLEU

    _check_pairs(hypotheses, references)
    refs = _reference_lists(references)
    _check_lang([r for rs in refs for r in rs], lang, "references")
    if len({len(r) for r in refs}) != 1:
        raise ValueError("give every hypothesis the same number of references.")
    streams = [list(s) for s in zip(*refs)]  # sacrebleu wants streams: stream k = every k-th reference
    return float(BLEU(tokenize=_bleu_tokenize(lang)).corpus_score(list(hypotheses), streams).score)


def bleu_signature(lang: str = "en", n_references: int = 1) -> str:
    """sacrebleu's signature of :func:`bleu`'s settings, e.g. ``nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|
    version:2.6.0``: print it beside a BLEU score, which means little without it (Post, 2018; notebook 05)."""
    from sacrebleu.metrics import BLEU

    if lang not in LANGS:
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}.")
    if not isinstance(n_references, int) or n_references < 1:
        raise ValueError(f"n_references must be a positive integer, got {n_references!r}.")
    metric = BLEU(tokenize=_bleu_tokenize(lang))
    metric.corpus_score(["x"], [["x"]] * n_references)  # sacrebleu learns the number of references by scoring
    return str(metric.get_signature())


def rouge(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], lang: str = "en",
          tokenizer: str = "char") -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Lin, 2004), each 0-1, averaged over pairs, by torchmetrics
    (notebook 05). English: torchmetrics' defaults (lower-cased words). Chinese (``lang="zh"``): tokens are
    characters (``tokenizer="char"``) or jieba words (``"jieba"``); the default normaliser deletes them."""
    from torchmetrics.text.rouge import ROUGEScore

    _check_pairs(hypotheses, references)
    _check_tokenizer(tokenizer)
    _check_lang([r for rs in _reference_lists(references) for r in rs], lang, "references")
    keys = ("rouge1", "rouge2", "rougeL")
    custom: dict[str, Callable[..., Any]] = {}
    if lang == "zh":
        custom = {"normalizer": _zh_normalize, "tokenizer": partial(_zh_tokens, tokenizer=tokenizer)}
    scores = ROUGEScore(rouge_keys=keys, **custom)(list(hypotheses), list(references))
    return {key: float(scores[f"{key}_fmeasure"]) for key in keys}


def bert_score(hypotheses: Sequence[str], references: Sequence[str], lang: str = "en",
               model_name: str | None = None) -> dict[str, float]:
    """BERTScore (Zhang et al., 2020): precision, recall and F1 (each at most 1) of greedily matched
    contextual token embeddings, averaged over pairs, by torchmetrics; about 0.8-1 for fluent text without
    baseline rescaling, so compare systems, not absolute values (notebook 05). Needs the internet:
    RoBERTa-large (en) or bert-base-chinese (zh) from the hub."""
    _check_pairs(hypotheses, references)
    _check_texts(references, "references")
    _check_lang(references, lang, "references")
    name, layers = (model_name, None) if model_name else _BERT_MODELS[lang]
    if not is_online():
        raise ModelNotAvailableError(
            f"BERTScore needs the {name!r} model from the Hugging Face hub (a download of up to ~1.4 GB), "
            "but this machine is offline (or HF_HUB_OFFLINE / AIGC_OFFLINE is set). Connect once to download "
            f"it; offline, use the overlap metrics instead: bleu(hypotheses, references, lang={lang!r}) and "
            f"rouge(hypotheses, references, lang={lang!r}).")
    from torchmetrics.text.bert import BERTScore

    metric = BERTScore(model_name_or_path=name, num_layers=layers, lang=lang)
    scores = metric(list(hypotheses), list(references))
    return {key: float(scores[key].mean()) for key in ("precision", "recall", "f1")}


# ------------------------------------------------------------------------------------------ language models
def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Bits per byte: a text's total negative log-likelihood (nats, summed over its tokens) over its UTF-8
    bytes, bpb = nll / (ln 2 * n_bytes), >= 0; 0 = certain, 8 = uniform over the 256 byte values
    (notebook 04).

    Perplexity per token, exp(nll / n_tokens), depends on the tokenizer: a BPE model that packs a sentence
    into fewer, rarer tokens has a larger loss per token than a character model on the same text, so their
    perplexities cannot be compared. The total nll of one text is comparable (each model gives the whole text
    one probability), and so is its byte count: bits per byte compares models with any tokenizers, and
    across languages.
    """
    if not isinstance(n_bytes, int) or n_bytes < 1:
        raise ValueError(f"n_bytes must be a positive integer (the text's UTF-8 length), got {n_bytes!r}.")
    if not math.isfinite(nll_nats) or nll_nats < 0:
        raise ValueError(f"nll_nats must be a finite total negative log-likelihood >= 0 (summed over tokens, "
                         f"in nats), got {nll_nats!r}.")
    return nll_nats / (math.log(2) * n_bytes)


def bits_per_byte_from_text(total_nll_nats: float, text: str) -> float:
    """:func:`bits_per_byte` with `text`'s bytes counted in UTF-8 (3 per Chinese character, notebook 04)."""
    if not isinstance(text, str) or not text:
        raise ValueError("text must be the non-empty string whose negative log-likelihood was summed.")
    return bits_per_byte(total_nll_nats, len(text.encode("utf-8")))
