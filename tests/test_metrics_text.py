"""Text metrics in English and Chinese: sacrebleu and torchmetrics as references, closed forms, pitfalls."""
from __future__ import annotations

import math

import pytest
import sacrebleu
from torchmetrics.text.rouge import ROUGEScore

from aigc_lib.hub import ModelNotAvailableError
from aigc_lib.metrics import text
from aigc_lib.metrics.text import (
    bert_score,
    bits_per_byte,
    bits_per_byte_from_text,
    bleu,
    bleu_signature,
    detect_language,
    distinct_n,
    rouge,
    self_bleu,
)

HYP, REF = "今天天气很好，我们去公园散步吧", "今天天气不错，我们去公园散步"  # a close paraphrase
UNRELATED_HYP, UNRELATED_REF = "猫喜欢吃鱼和睡觉", "股票市场大幅下跌"  # no character in common
KEYS = ("rouge1", "rouge2", "rougeL")


def _torchmetrics_rouge(hyps, refs, **kwargs):
    scores = ROUGEScore(rouge_keys=KEYS, **kwargs)(hyps, refs)
    return {key: float(scores[f"{key}_fmeasure"]) for key in KEYS}


# ------------------------------------------------------------------------------------------ the pitfall
def test_default_tokenisers_score_a_close_chinese_paraphrase_zero():
    # sacrebleu's 13a splits on spaces: each Chinese sentence is one "word", and the two words differ
    assert sacrebleu.corpus_bleu([HYP], [[REF]]).score == 0.0
    # torchmetrics' default normaliser keeps only [a-z0-9]: every Chinese character is deleted
    assert _torchmetrics_rouge([HYP], [REF]) == {key: 0.0 for key in KEYS}


def test_chinese_bleu_and_rouge_see_the_paraphrase():
    assert bleu([HYP], [REF], lang="zh") > 55  # 64.75 measured (sacrebleu 2.6.0, tok:zh); 0.0 with 13a
    # characters without the comma: 14 in HYP, 13 in REF, 11 shared unigrams and 9 shared bigrams,
    # F = 2 * overlap / (len_hyp + len_ref); the longest common subsequence is the 11 shared characters
    char = rouge([HYP], [REF], lang="zh")
    assert char["rouge1"] == pytest.approx(22 / 27) and char["rougeL"] == pytest.approx(22 / 27)
    assert char["rouge2"] == pytest.approx(18 / 25)
    # jieba 0.42.1: [今天天气 很 好 我们 去 公园 散步 吧] vs [今天天气 不错 我们 去 公园 散步], 5 shared of 8 and 6
    words = rouge([HYP], [REF], lang="zh", tokenizer="jieba")
    assert words["rouge1"] == pytest.approx(10 / 14) and words["rouge2"] == pytest.approx(0.5)


def test_unrelated_chinese_scores_zero():
    assert bleu([UNRELATED_HYP], [UNRELATED_REF], lang="zh") < 1  # 0.0 measured
    for tokenizer in ("char", "jieba"):
        assert max(rouge([UNRELATED_HYP], [UNRELATED_REF], lang="zh", tokenizer=tokenizer).values()) < 0.05


# ------------------------------------------------------------------------------------------ BLEU
def test_bleu_matches_sacrebleu_for_both_languages_and_transposes_references():
    hyps = ["the cat sat on the mat", "a dog ran in the park today"]
    refs = [["the cat sat on a mat", "a cat is on the mat"],
            ["the dog ran in the park", "a dog runs in a park"]]
    streams = [[r[0] for r in refs], [r[1] for r in refs]]  # sacrebleu: stream k holds every k-th reference
    assert bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score, abs=1e-9)
    assert bleu(hyps, [r[0] for r in refs]) == pytest.approx(sacrebleu.corpus_bleu(hyps, [streams[0]]).score)
    zh = sacrebleu.corpus_bleu([HYP, UNRELATED_HYP], [[REF, UNRELATED_REF]], tokenize="zh").score
    assert bleu([HYP, UNRELATED_HYP], [REF, UNRELATED_REF], lang="zh") == pytest.approx(zh, abs=1e-9)
    with pytest.raises(ValueError, match="same number of references"):
        bleu(hyps, [["a", "b"], ["c"]])


def test_bleu_signature_is_sacrebleus_own():
    metric = sacrebleu.metrics.BLEU(tokenize="zh")
    metric.corpus_score([HYP], [[REF], [REF]])
    assert bleu_signature("zh", n_references=2) == str(metric.get_signature())
    assert bleu_signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|")
    assert bleu_signature("zh").endswith(f"tok:zh|smooth:exp|version:{sacrebleu.__version__}")
    with pytest.raises(ValueError, match="'en' or 'zh'"):
        bleu_signature("fr")


# ------------------------------------------------------------------------------------------ ROUGE
def test_english_rouge_is_torchmetrics_exactly():
    pairs = [("the cups ship today", "the cups ship tomorrow"),
             ("A teapot can be returned within 30 days.", "You can return a teapot in thirty days!"),
             ("green tea is brewed cooler", "brew green tea at 80 degrees, not boiling")]
    hyps, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    assert rouge(hyps, refs) == _torchmetrics_rouge(hyps, refs)
    assert rouge(hyps[:1], refs[:1])["rouge2"] == pytest.approx(2 / 3)


def test_an_empty_hypothesis_scores_zero_but_an_empty_corpus_is_refused():
    assert rouge(["", HYP], [REF, REF], lang="zh")["rouge1"] == pytest.approx(0.5 * 22 / 27)
    assert bleu(["", HYP], [REF, REF], lang="zh") > 0
    with pytest.warns(UserWarning, match="all 2 hypotheses are empty"):
        assert bleu(["", " "], ["a b", "c d"]) == 0.0
    with pytest.raises(ValueError, match="every one of the 2 references is empty"):
        rouge(["a b", "c d"], ["", ""])
    assert distinct_n(["", ""]) == 0.0  # a model that said nothing: no n-grams, no diversity (chapter 05's smoke run)
    with pytest.raises(ValueError, match="every one of the 2 texts is empty"):
        self_bleu(["", ""])


# ------------------------------------------------------------------------------------------ language
def test_detect_language_by_the_share_of_cjk_letters():
    assert detect_language(HYP) == "zh" and detect_language("The cups ship today.") == "en"
    assert detect_language("我用PyTorch训练了GPT模型") == "zh"  # 9 of 19 letters CJK: Chinese with English names
    assert detect_language("The word 你好 means hello") == "en"  # 2 of 17
    assert detect_language("12345, 678!") == "en"  # no letters at all


def test_a_lang_that_disagrees_with_the_texts_names_the_right_one():
    with pytest.raises(ValueError, match=r"lang='en' but the references look Chinese.*pass lang='zh'"):
        bleu([HYP], [REF])
    with pytest.raises(ValueError, match=r"lang='en'.*Chinese.*pass lang='zh'"):
        rouge([HYP], [REF])
    with pytest.raises(ValueError, match=r"lang='zh' but the references look English.*pass lang='en'"):
        rouge(["the cups ship today"], ["the cups ship tomorrow"], lang="zh")
    with pytest.raises(ValueError, match="pass lang='zh'"):
        distinct_n([HYP, REF])
    with pytest.raises(ValueError, match="pass lang='en'"):
        self_bleu(["the cat sat", "a dog ran"], lang="zh")
    with pytest.raises(ValueError, match="'en' or 'zh', got 'ja'"):
        bleu(["a"], ["a"], lang="ja")
    with pytest.raises(ValueError, match="'char'.*'jieba'"):
        rouge([HYP], [REF], lang="zh", tokenizer="spaces")
    with pytest.raises(TypeError, match="one string"):  # a string is a sequence of characters: refuse it
        bleu("the cat", "the cat")
    with pytest.raises(TypeError, match="decode token ids first"):
        distinct_n([[1, 2, 3]])


# ------------------------------------------------------------------------------------------ diversity
def test_distinct_n_counts_chinese_characters_or_jieba_words():
    assert distinct_n(["哈哈哈哈"], 1, lang="zh") == pytest.approx(1 / 4)  # one unique of four characters
    assert distinct_n(["哈哈哈哈"], 2, lang="zh") == pytest.approx(1 / 3)
    assert distinct_n([HYP, REF], 1, lang="zh") == pytest.approx(15 / 27)  # 27 characters, 15 different
    # jieba: 8 + 6 words, 9 different (今天天气 我们 去 公园 散步 + 很 好 吧 不错)
    assert distinct_n([HYP, REF], 1, lang="zh", tokenizer="jieba") == pytest.approx(9 / 14)
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b c", "a b d"], 2) == 0.75  # English: words
    with pytest.raises(ValueError, match="positive integer"):
        distinct_n(["a b"], 0)


def test_self_bleu_is_100_for_copies_and_near_0_for_unrelated_texts():
    assert self_bleu(["the cups ship in three days"] * 3) == pytest.approx(100)
    unrelated = ["the cat sat on the mat", "stock markets fell sharply today", "quick brown foxes jump high"]
    assert self_bleu(unrelated) < 5  # 0.0 measured: some shared "the" is not enough
    assert self_bleu([HYP] * 4, lang="zh") == pytest.approx(100)
    assert self_bleu([HYP, REF], lang="zh") > 10 * self_bleu([UNRELATED_HYP, UNRELATED_REF], lang="zh")
    with pytest.raises(ValueError, match="at least 2 texts"):
        self_bleu(["only one"])


# ------------------------------------------------------------------------------------------ bits per byte
def test_bits_per_byte_of_a_uniform_byte_model_is_exactly_8():
    n_bytes = 1000
    assert bits_per_byte(n_bytes * math.log(256), n_bytes) == pytest.approx(8, rel=1e-12)
    assert bits_per_byte(0.0, 5) == 0.0
    # Chinese is 3 bytes a character in UTF-8: uniform over bytes still gives 8, per character 24 bits
    text_zh = "今天天气很好"
    assert bits_per_byte_from_text(18 * math.log(256), text_zh) == pytest.approx(8, rel=1e-12)
    # one text, one total nll, a 2-token and a 6-token tokenizer: bpb agrees, perplexity per token does not
    nll = 12.0
    assert math.exp(nll / 2) > 10 * math.exp(nll / 6)
    assert bits_per_byte_from_text(nll, text_zh) == pytest.approx(nll / (math.log(2) * 18))
    with pytest.raises(ValueError, match="n_bytes must be a positive integer"):
        bits_per_byte(1.0, 0)
    with pytest.raises(ValueError, match="finite"):
        bits_per_byte(float("nan"), 3)
    with pytest.raises(ValueError, match="non-empty"):
        bits_per_byte_from_text(1.0, "")


# ------------------------------------------------------------------------------------------ BERTScore
def test_bert_score_offline_names_the_offline_alternatives(monkeypatch):
    monkeypatch.setenv("AIGC_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match=r"bert-base-chinese.*download.*offline.*lang='zh'"):
        bert_score([HYP], [REF], lang="zh")
    with pytest.raises(ModelNotAvailableError, match=r"roberta-large.*bleu\(hypotheses, references, "
                                                     r"lang='en'\)"):
        bert_score(["the cat"], ["a cat"])
    with pytest.raises(ValueError, match="pass lang='zh'"):  # input checks come before the network
        bert_score([HYP], [REF])


def test_every_public_name_is_exported():
    assert sorted(text.__all__) == sorted(name for name in dir(text) if not name.startswith("_") and callable(
        getattr(text, name)) and getattr(getattr(text, name), "__module__", "") == text.__name__)
