"""Near-duplicate leakage: shingle Jaccard in closed form, MinHash against the exact Jaccard, Chinese text, and the
shop Q&A set split at random (leaks) versus by answer (qa_split)."""
from __future__ import annotations

import difflib
import itertools

import pytest

from aigc_lib.data import load_qa, qa_split, split
from aigc_lib.metrics.leakage import MinHasher, is_cjk, jaccard, near_duplicates, shingles

SENTENCE = ("our small studio in riverton fires every teapot twice so the glaze stays smooth and the handle "
            "never cracks in daily use")  # 22 words
UNRELATED = ["Wholesale orders start at $300; ask trade@willowandkiln.example for the price list.",
             "Yes, we're open on Thursdays from 9 am to 6 pm.",
             "Matcha should be whisked with water at about 80 degrees, never boiling."]


def _one_word_changed(text: str, position: int, word: str = "CHANGED") -> str:
    words = text.split()
    return " ".join(words[:position] + [word] + words[position + 1:])


def test_jaccard_of_a_one_word_change_has_its_closed_form():
    # L words give L-n+1 trigrams; a change in the middle breaks n of them: J = (L-2n+1) / (L+1)
    words, n = len(SENTENCE.split()), 3
    expected = (words - 2 * n + 1) / (words + 1)  # 17 / 23 = 0.739
    assert jaccard(SENTENCE, _one_word_changed(SENTENCE, 10), n=n) == pytest.approx(expected)
    assert jaccard(SENTENCE, SENTENCE.upper().replace(" ", "  ") + "!") == 1.0  # case, spacing, punctuation
    assert jaccard("", "") == 0.0 and shingles("a b", n=3) == {"a b"}


def test_near_duplicates_finds_copies_and_one_word_paraphrases_but_not_unrelated_texts():
    train = UNRELATED + [SENTENCE]
    test = [SENTENCE, _one_word_changed(SENTENCE, 10), "Engraving costs $8 and takes two business days."]
    found = near_duplicates(train, test, threshold=0.7)  # the one-word change scores 0.739 (closed form above)
    assert [(t, s) for t, s, _ in found] == [(0, 3), (1, 3)]
    assert found[0][2] == 1.0 and found[1][2] == pytest.approx(17 / 23)
    assert near_duplicates(train, test, threshold=0.8) == found[:1]  # 0.8 keeps only the exact copy


def test_minhash_estimates_the_exact_jaccard():
    texts = [SENTENCE] + [_one_word_changed(SENTENCE, k) for k in (2, 8, 15)] + UNRELATED
    texts.append(" ".join(SENTENCE.split()[:12]) + " and then some entirely different words follow here")
    sets = [shingles(t) for t in texts]
    sig = MinHasher(num_perm=128, seed=0).signatures(sets)
    errors = [abs(MinHasher.estimate(sig[a], sig[b]) - jaccard(sets[a], sets[b]))
              for a, b in itertools.combinations(range(len(texts)), 2)]
    assert max(errors) < 0.1  # sd sqrt(J(1-J)/128) <= 0.044
    assert (MinHasher(seed=1).signature(sets[0]) != sig[0]).any()  # the seed picks the hash functions
    assert (MinHasher(seed=0).signature(sets[0]) == sig[0]).all()  # and a seed reproduces them


def test_near_duplicates_matches_the_exact_all_pairs_search():
    train = [_one_word_changed(SENTENCE, k, w) for k, w in itertools.product((1, 7, 13), ("tea", "cup"))]
    test = [_one_word_changed(SENTENCE, k) for k in (0, 5, 10, 19)] + UNRELATED
    exact = sorted((t, s, jaccard(a, b)) for (t, a), (s, b) in itertools.product(enumerate(test), enumerate(train))
                   if jaccard(a, b) >= 0.5)
    assert len(exact) > 10  # 16 measured: the search has something to miss
    assert sorted(near_duplicates(train, test, threshold=0.5)) == exact


def test_chinese_text_uses_character_ngrams():
    question = "请问你们的茶壶可以刻字吗？刻字需要多少钱，多久能发货？"
    assert is_cjk(question) and not is_cjk(SENTENCE)
    assert "茶壶可" in shingles(question) and all(len(s) == 3 for s in shingles(question))
    paraphrase = question.replace("多少钱", "几块钱")  # one word (two characters) changed
    other = "我们的店铺周一到周五早上九点开门，周末休息。"
    found = near_duplicates([other, question], [paraphrase, "退货需要在三十天内联系客服。"], threshold=0.6)
    # 24 characters give 22 trigrams; two changed characters break 2 + 3 - 1 = 4 of them: J = 18 / 26
    assert [(t, s) for t, s, _ in found] == [(0, 1)] and found[0][2] == pytest.approx(18 / 26)


# ------------------------------------------------------------------------------------- the shop Q&A set
def _leaked(train: list[dict], test: list[dict], threshold: float) -> tuple[int, list[tuple[int, int, float]]]:
    found = near_duplicates([p["answer"] for p in train], [p["answer"] for p in test], threshold=threshold)
    return len({t for t, _, _ in found}), found


def _differing_spans(a: str, b: str) -> list[int]:
    """Lengths in words of the spans where a word-level diff of a and b differs (one template slot: [1] to [3])."""
    ops = difflib.SequenceMatcher(a=a.split(), b=b.split(), autojunk=False).get_opcodes()
    return [max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def test_a_random_split_leaks_answers_and_the_split_by_answer_leaks_only_templates():
    pairs = load_qa("shop")
    random_train, random_test = split(pairs, (0.8, 0.2), seed=0)  # item-level, ignores answer groups
    group_train, _, group_test = qa_split(pairs, seed=0)
    random_leaks, _ = _leaked(random_train, random_test, 0.8)
    group_leaks, group_found = _leaked(group_train, group_test, 0.8)
    assert random_leaks > 0.6 * len(random_test)  # 136 of 153 measured
    assert group_leaks < 0.5 * random_leaks  # 62 of 151 measured: ...
    # ... every one is a templated answer whose one slot (order number, country, colour, name) differs from
    # its training twin: qa_split groups equal answers only, so one template's fillings cross the split
    for t, s, _ in group_found:
        spans = _differing_spans(group_test[t]["answer"], group_train[s]["answer"])
        assert len(spans) == 1 and spans[0] <= 3, (group_test[t]["answer"], group_train[s]["answer"])
    # at 0.9, above every one-slot template (max 0.867), the split by answer is clean and the random one is not
    assert _leaked(group_train, group_test, 0.9)[0] == 0
    assert _leaked(random_train, random_test, 0.9)[0] > 0.6 * len(random_test)  # 101 measured, the exact copies


def test_bad_inputs_say_what_to_do():
    with pytest.raises(TypeError, match="lists of texts"):
        near_duplicates("one train text", ["a test text"])
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(["a b c"], ["a b c"], threshold=0)
    with pytest.raises(ValueError, match="unit"):
        shingles("a b c", unit="sentence")
