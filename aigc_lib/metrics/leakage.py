"""Train/test leakage: near-duplicate texts by n-gram shingles, Jaccard similarity and MinHash (notebook 05).

A test item that is a near copy of a training item measures recall, not generalisation. Texts become sets of
shingles (word n-grams, or character n-grams for Chinese and other CJK text); two texts are near duplicates
when the Jaccard similarity |A & B| / |A | B| of their sets reaches a threshold. MinHash (Broder 1997) makes
the all-pairs search cheap: P(min h(A) = min h(B)) = J(A, B), so the share of equal signature entries
estimates J; candidates found that way are verified with the exact Jaccard.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["MinHasher", "is_cjk", "jaccard", "near_duplicates", "shingles"]

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+")
_PRIME = (1 << 61) - 1  # Mersenne prime for the universal hashes h(x) = (a x + b) mod p
_MAX_HASH = (1 << 32) - 1


def is_cjk(text: str) -> bool:
    """True when ``text`` holds Chinese, Japanese or Korean characters, which are not separated by spaces."""
    return bool(_CJK.search(text))


def shingles(text: str, n: int = 3, unit: str = "auto") -> set[str]:
    """The set of word (``unit="word"``) or character (``"char"``) n-grams of a normalised text (notebook 05).

    Text is NFKC-normalised and lower-cased; words are runs of letters and digits (punctuation dropped);
    characters skip spaces and punctuation. ``"auto"`` uses characters for CJK text, words otherwise. A text
    shorter than n units gives one shingle, itself; an empty text gives the empty set.
    """
    if n < 1:
        raise ValueError(f"n must be a positive n-gram length (e.g. 3), got {n}.")
    if unit not in ("auto", "word", "char"):
        raise ValueError(f"unit must be 'auto', 'word' or 'char', got {unit!r}.")
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    use_chars = unit == "char" or (unit == "auto" and is_cjk(text))
    tokens = list("".join(words)) if use_chars else words
    sep = "" if use_chars else " "
    if len(tokens) <= n:
        return {sep.join(tokens)} if tokens else set()
    return {sep.join(tokens[k:k + n]) for k in range(len(tokens) - n + 1)}


def jaccard(a: str | set[str], b: str | set[str], n: int = 3, unit: str = "auto") -> float:
    """Exact Jaccard similarity |A & B| / |A | B| of two texts' shingle sets (or of two sets); 0 if both empty."""
    set_a = a if isinstance(a, (set, frozenset)) else shingles(a, n, unit)
    set_b = b if isinstance(b, (set, frozenset)) else shingles(b, n, unit)
    union = len(set_a | set_b)
    return len(set_a & set_b) / union if union else 0.0


class MinHasher:
    """MinHash signatures with ``num_perm`` seeded universal hashes (Broder 1997; as in datasketch) (notebook 05).

    Shingles are hashed to 32 bits by blake2b (stable across runs, unlike ``hash``), then by
    h_i(x) = (a_i x + b_i) mod (2^61 - 1), truncated to 32 bits; a signature keeps the minimum per i.
    """

    def __init__(self, num_perm: int = 128, seed: int = 0):
        if num_perm < 1:
            raise ValueError(f"num_perm must be a positive number of hash functions (e.g. 128), got {num_perm}.")
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, _MAX_HASH, num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _MAX_HASH, num_perm, dtype=np.uint64)

    def signature(self, shingle_set: Iterable[str]) -> np.ndarray:
        """(num_perm,) uint64 minimum hashes of a shingle set; an empty set gives all 2^32 (matches nothing)."""
        x = np.array([int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest(), "little")
                      for s in shingle_set], dtype=np.uint64)
        if len(x) == 0:
            return np.full(self.num_perm, _MAX_HASH + 1, dtype=np.uint64)
        # a, x < 2^32, so a x + b < 2^64 and uint64 cannot overflow
        hashed = ((x[:, None] * self.a[None, :] + self.b[None, :]) % np.uint64(_PRIME)) & np.uint64(_MAX_HASH)
        return hashed.min(axis=0)  # (num_perm,)

    def signatures(self, shingle_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """(N, num_perm) signatures, one row per shingle set."""
        return np.stack([self.signature(s) for s in shingle_sets]) if shingle_sets else (
            np.empty((0, self.num_perm), dtype=np.uint64))

    @staticmethod
    def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
        """Estimated Jaccard: the share of equal entries, along the last axis (broadcasts)."""
        return (sig_a == sig_b).mean(axis=-1)


def near_duplicates(train_texts: Sequence[str], test_texts: Sequence[str], threshold: float = 0.8, n: int = 3,
                    unit: str = "auto", num_perm: int = 128, slack: float = 0.15, seed: int = 0,
                    ) -> list[tuple[int, int, float]]:
    """Every (test_idx, train_idx, jaccard) with exact shingle Jaccard >= ``threshold`` (notebook 05).

    1. Shingle every text (:func:`shingles`) and MinHash it (:class:`MinHasher`, seeded);
    2. keep the pairs whose MinHash estimate is >= threshold - ``slack``: the estimate's standard error is
       sqrt(J (1 - J) / num_perm) <= 0.044 at 128 hashes, so 0.15 is over 3 of them and misses are rare;
    3. verify the candidates with the exact Jaccard. Sorted by test index, then by decreasing similarity.
    Empty texts (no letters or digits) match nothing.
    """
    if isinstance(train_texts, str) or isinstance(test_texts, str):
        raise TypeError("pass lists of texts (e.g. [p['answer'] for p in train]), not single strings.")
    if not 0 < threshold <= 1 or slack < 0:
        raise ValueError(f"threshold must be in (0, 1] and slack >= 0, got {threshold} and {slack}.")
    # 1. shingles and signatures
    train_sets = [shingles(t, n, unit) for t in train_texts]
    test_sets = [shingles(t, n, unit) for t in test_texts]
    hasher = MinHasher(num_perm, seed)
    train_sig, test_sig = hasher.signatures(train_sets), hasher.signatures(test_sets)  # (N, P), (M, P)
    found = []
    chunk = max(1, 2_000_000 // max(1, len(train_sets) * num_perm))  # bound the (chunk, N, P) comparison
    for start in range(0, len(test_sets), chunk):
        # 2. candidates by the MinHash estimate
        estimate = MinHasher.estimate(test_sig[start:start + chunk, None, :], train_sig[None, :, :])  # (c, N)
        for row, col in zip(*np.nonzero(estimate >= threshold - slack)):
            # 3. verification by the exact Jaccard
            test_idx, train_idx = start + int(row), int(col)
            similarity = jaccard(test_sets[test_idx], train_sets[train_idx])
            if similarity >= threshold:
                found.append((test_idx, train_idx, similarity))
    return sorted(found, key=lambda f: (f[0], -f[2], f[1]))
