"""Text metrics: BLEU and ROUGE against references, distinct-n for diversity (notebooks 05, 06, 10).

Well-kept implementations do the counting: sacrebleu for BLEU, torchmetrics for ROUGE.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["bleu", "distinct_n", "rouge"]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams / all word n-grams over the texts, 1 = no repeats (notebook 04)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's standard tokenisation; one reference (or a list) each (notebook 05)."""
    import sacrebleu

    _check_pairs(hypotheses, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    streams = [list(s) for s in zip(*refs)] if len({len(r) for r in refs}) == 1 else None
    if streams is None:
        raise ValueError("give every hypothesis the same number of references.")
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0-1), averaged over pairs, by torchmetrics (notebook 05)."""
    from torchmetrics.text.rouge import ROUGEScore

    _check_pairs(hypotheses, references)
    scores = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL"))(list(hypotheses), list(references))
    return {key: float(scores[f"{key}_fmeasure"]) for key in ("rouge1", "rouge2", "rougeL")}


def _check_pairs(hypotheses: Sequence[Any], references: Sequence[Any]) -> None:
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"need one reference per hypothesis and at least one pair, got {len(hypotheses)} "
                         f"hypotheses and {len(references)} references.")
