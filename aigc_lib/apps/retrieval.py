"""BM25 retrieval over the shop's policy facts, English and Chinese, written from scratch (notebook 14).

Why BM25 and not sentence embeddings here: a policy answer hinges on exact terms (a promo code such as
``WELCOME10``, a product, a city, "Sunday"), which term matching finds and a general embedding may blur; BM25
needs no model download, runs offline in microseconds on 78 facts; and every score is a sum of per-term
contributions that a reader can check by hand (see :meth:`BM25.explain`), which matters when a guardrail acts on a
score threshold.

BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond", eq. 3.15 with k3 = 0,
i.e. each distinct query term counted once) scores document d for query q as

    score(q, d) = sum_{t in q} idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

with the IDF smoothed by +1 inside the log as Lucene (BM25Similarity) and Elasticsearch do, so that it never goes
negative for a term found in more than half the documents:

    idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

Tokens: English is lower-cased and split into runs of letters and digits. Chinese, written without spaces, is cut
into overlapping character bigrams by default ("运费多少" -> 运费, 费多, 多少), the scheme of Lucene's CJK analyzer:
it needs no dictionary, so shop terms a segmenter has never seen (陶土茶壶, 里弗顿) still match on their parts, and
a wrong segmentation cannot hide a term; ``chinese="jieba"`` uses jieba's words instead for comparison.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_lib.apps.knowledge import Fact, policy_facts

__all__ = ["BM25", "MAX_QUERY_CHARS", "Retriever", "RetrieverConfig", "language_of", "random_top1_accuracy",
           "tokenize", "top1_accuracy"]

MAX_QUERY_CHARS = 1000  # a customer question longer than this is refused, not searched
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[a-z0-9]+")


def language_of(text: str) -> str:
    """``"zh"`` when the text holds a Chinese character, else ``"en"`` (notebook 14)."""
    return "zh" if re.search(f"[{_CJK}]", text) else "en"


def tokenize(text: str, chinese: str = "bigram") -> list[str]:
    """Lower-cased Latin words and digit runs, and Chinese as character bigrams or jieba words (notebook 14).

    A run of Chinese characters of length 1 stays one token; with ``chinese="bigram"`` a longer run becomes its
    overlapping pairs of characters.
    """
    if chinese not in ("bigram", "jieba"):
        raise ValueError(f"chinese must be 'bigram' (overlapping character pairs) or 'jieba' (words), got {chinese!r}.")
    tokens: list[str] = []
    for run in _TOKEN.findall(text.lower()):
        if not re.match(f"[{_CJK}]", run):
            tokens.append(run)
        elif chinese == "jieba":
            tokens.extend(w for w in _jieba().lcut(run) if w.strip())
        else:
            tokens.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return tokens


def _jieba() -> Any:
    import jieba  # imported on first use: the bigram default needs no dictionary

    jieba.setLogLevel(logging.WARNING)
    return jieba


class BM25:
    """Okapi BM25 over tokenised documents (notebook 14); see the module docstring for the formula."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        if not documents or any(len(d) == 0 for d in documents):
            raise ValueError(f"BM25 needs at least one document and no empty ones; got {len(documents)} documents, "
                             f"{sum(len(d) == 0 for d in documents)} empty.")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1 (usual: k1 = 1.2-2.0, b = 0.75), got k1={k1}, b={b}.")
        self.k1, self.b = k1, b
        self.term_counts = [Counter(d) for d in documents]  # tf(t, d)
        self.lengths = np.array([len(d) for d in documents], dtype=float)  # |d|
        self.avgdl = float(self.lengths.mean())
        n_docs = len(documents)
        df = Counter(t for counts in self.term_counts for t in counts)  # n(t): documents holding t
        # idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))   (the Lucene form, always > 0)
        self.idf = {t: math.log(1 + (n_docs - n + 0.5) / (n + 0.5)) for t, n in df.items()}

    def explain(self, query: Sequence[str], doc: int) -> dict[str, float]:
        """Each distinct query term's contribution to the score of document ``doc``."""
        # length normalisation: k1 * (1 - b + b * |d| / avgdl)
        norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.avgdl)
        parts = {}
        for term in dict.fromkeys(query):  # distinct terms, in query order
            tf = self.term_counts[doc].get(term, 0)
            parts[term] = self.idf.get(term, 0.0) * tf * (self.k1 + 1) / (tf + norm) if tf else 0.0
        return parts

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query tokens, shape (N,)."""
        return np.array([sum(self.explain(query, d).values()) for d in range(len(self.term_counts))])


@dataclass(frozen=True)
class RetrieverConfig:
    """BM25 parameters and Chinese tokens for :class:`Retriever` (notebook 14)."""

    # chosen on the validation splits (EN and ZH) from k1 in {0.9, 1.2, 1.5, 2}, b in {0, 0.3, 0.5, 0.75}: facts
    # are short and alike in length, so weak length normalisation (b = 0.3) did best (EN 0.88, ZH 0.98 top-1)
    k1: float = 1.2
    b: float = 0.3
    chinese: str = "bigram"  # or "jieba" (same EN, ZH val 0.99)


class Retriever:
    """Top-k policy facts for a question, searched in the question's language (notebook 14)."""

    def __init__(self, facts: Sequence[Fact] | None = None, config: RetrieverConfig = RetrieverConfig()):
        self.facts = list(facts) if facts is not None else policy_facts()
        self.config = config
        self.indexes = {lang: BM25([tokenize(f.search_text(lang), config.chinese) for f in self.facts], config.k1, config.b)
                        for lang in ("en", "zh")}

    def search(self, query: str, k: int = 3, language: str | None = None) -> list[tuple[Fact, float]]:
        """The ``k`` best (fact, BM25 score) pairs, best first; ties keep the knowledge-base order."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query must be a non-empty string, got {query!r:.40}.")
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query has {len(query):,} characters, more than MAX_QUERY_CHARS = {MAX_QUERY_CHARS}: "
                             "shorten it to the question itself.")
        if not 1 <= k <= len(self.facts):
            raise ValueError(f"k must be between 1 and {len(self.facts)} (the facts indexed), got {k}.")
        lang = language or language_of(query)
        if lang not in self.indexes:
            raise ValueError(f"language must be 'en', 'zh' or None (detect), got {language!r}.")
        scores = self.indexes[lang].scores(tokenize(query, self.config.chinese))
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.facts[i], float(scores[i])) for i in order]


def top1_accuracy(retriever: Retriever, pairs: Sequence[dict[str, str]]) -> float:
    """Fraction of Q&A pairs whose top fact answers the pair's intent (notebook 14)."""
    if not pairs:
        raise ValueError("pairs is empty: pass Q&A pairs {question, intent}, e.g. a test split.")
    return float(np.mean([p["intent"] in retriever.search(p["question"], k=1)[0][0].intents for p in pairs]))


def random_top1_accuracy(facts: Sequence[Fact], pairs: Sequence[dict[str, str]]) -> float:
    """Expected top-1 accuracy of a fact drawn uniformly at random, in closed form (notebook 14)."""
    if not pairs or not facts:
        raise ValueError("need facts and Q&A pairs to compute the random baseline.")
    return float(np.mean([sum(p["intent"] in f.intents for f in facts) / len(facts) for p in pairs]))
