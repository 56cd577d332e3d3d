"""Question-answer sets in data/qa, and splits that keep an answer inside one split (notebooks 05, 06, 12)."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aigc_lib.data.common import DATA_DIR

__all__ = ["QA_FIELDS", "load_qa", "qa_sets", "qa_split", "split_seen_answers"]

QA_FIELDS = ("id", "intent", "question", "answer")


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
