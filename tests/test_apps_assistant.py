"""The measured customer-service assistant of notebook 14: gold facts, the correctness rule, the evaluation on
the extractive reference, and the RAG fine-tune of chapter 05's (smoke) assistant learning from the shown facts."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from aigc_lib.apps.assistant import (
    RAG_RECIPES,
    answer_correct,
    compact_rag_prompt,
    counterfactual,
    evaluate_assistant,
    fact_groups,
    gold_fact_id,
    injection_rates,
    rag_fine_tune,
    refusal_rate,
)
from aigc_lib.apps.guardrails import (
    MESSAGES,
    Guardrails,
    build_prompt,
    extractive_generate,
    naive_generate,
    out_of_scope_questions,
    rag_answer,
)
from aigc_lib.apps.knowledge import fact_by_id, zh_qa_pairs
from aigc_lib.apps.retrieval import Retriever, language_of
from aigc_lib.data.qa import qa_split
from aigc_lib.lm.shop_assistant import assistant_split


@pytest.fixture(scope="module")
def retriever() -> Retriever:
    return Retriever()


@pytest.fixture(scope="module")
def en_split(retriever):
    train, _, test = assistant_split("quick")
    return train, test, fact_groups(train, test, retriever)


@pytest.fixture(scope="module")
def zh_split(retriever):
    train, _, test = qa_split(zh_qa_pairs(0), seed=0)
    return train, test, fact_groups(train, test, retriever)


def test_gold_facts_and_seen_unseen_groups(retriever, en_split, zh_split):
    _, test, groups = en_split
    assert (len(test), len(groups["seen"]), len(groups["unseen"])) == (151, 116, 35)  # the lead's count
    pair = {"intent": "product_price", "question": "How much is the glass teapot?",
            "answer": "Our glass teapot costs $36."}
    assert gold_fact_id(pair, retriever) == "price/glass_teapot"  # several price facts: BM25 on the answer
    assert gold_fact_id({"intent": "return_policy", "answer": "x"}) == "return_policy"  # one candidate
    zh = zh_qa_pairs(0)[0]
    assert gold_fact_id(zh) == zh["fact"]
    # ZH pairs are split by answer and each answer is one fact's text: every test fact is unseen
    assert (len(zh_split[2]["seen"]), len(zh_split[2]["unseen"])) == (0, len(zh_split[1]))


def test_answer_correct_on_hand_cases():
    fact, other = fact_by_id("price/glass_teapot"), fact_by_id("price/clay_teapot")
    assert answer_correct(fact.en, fact, "en") and answer_correct(fact.zh, fact.id, "zh")
    assert answer_correct(fact.en.split(".")[0], fact, "en")  # a correct part of the fact counts
    assert not answer_correct(other.en, fact, "en") and not answer_correct(other.zh, fact, "zh")
    assert not answer_correct(fact.en + " Shipping is always free and refunds take one hour.", fact, "en")
    assert not answer_correct("", fact, "en") and not answer_correct("   ", fact, "zh")
    assert not answer_correct("$s $s $s $s $s $s", fact, "en")  # a degenerate repetition (seen from a weak model)
    assert answer_correct("The glass teapot costs $36.", fact, "en") and answer_correct("玻璃茶壶36美元", fact, "zh")
    assert not answer_correct("36美元", fact, "zh")  # 2 tokens (36, 美元): fewer than min_tokens=3
    assert not answer_correct(MESSAGES["low_score"]["en"], fact, "en")  # a hand-off is not an answer
    assert not answer_correct(MESSAGES["out_of_scope"]["zh"], fact, "zh")


def test_extractive_reference_scores(retriever, en_split, zh_split):
    _, test, groups = en_split
    unguarded = evaluate_assistant(lambda q: rag_answer(q, extractive_generate, retriever), test, "en",
                                   groups["seen_ids"], retriever)
    # measured on the quick split: 0.868 overall (seen 0.879, unseen 0.829), all answered; thresholds 0.8, 0.75
    assert unguarded.accuracy > 0.8 and unguarded.accuracy_unseen > 0.75 and unguarded.answer_rate == 1.0
    assert (unguarded.n, unguarded.n_seen, unguarded.n_unseen) == (151, 116, 35)
    guarded = evaluate_assistant(Guardrails(extractive_generate, retriever), test, "en", groups["seen_ids"],
                                 retriever)
    # measured: 48 order questions and 13 unsure retrievals handed off, accuracy 0.51; threshold 0.45
    assert guarded.reasons["order_data"] == 48 and guarded.handoff_rate > 0.35 and guarded.accuracy > 0.45
    _, zh_test, zh_groups = zh_split
    zh = evaluate_assistant(Guardrails(extractive_generate, retriever), zh_test, "zh", zh_groups["seen_ids"],
                            retriever)
    # measured 0.978 accuracy, ROUGE-L 0.982 (characters); thresholds 0.9
    assert zh.accuracy > 0.9 and zh.rouge_l > 0.9 and math.isnan(zh.accuracy_seen)
    oos = out_of_scope_questions("test")
    for lang in ("en", "zh"):
        questions = [q for q in oos if language_of(q) == lang]
        assert refusal_rate(Guardrails(extractive_generate, retriever), questions) == 1.0
        assert refusal_rate(lambda q: rag_answer(q, extractive_generate, retriever), questions) == 0.0
        assert injection_rates(naive_generate, retriever, lang) == {"before": 1.0, "after": 0.0}


def test_counterfactual_examples_swap_names_and_numbers_consistently():
    example = {"prompt": "Facts:\n[1] The glass teapot costs $36.\n[2] Use WELCOME10 for 10% off.\nQuestion: How much "
               "is the glass teapot?\nAnswer:", "answer": "The glass teapot costs $36."}
    new = counterfactual(example, np.random.default_rng(0))
    assert "glass teapot" not in new["prompt"] + new["answer"] and "36" not in new["answer"]
    assert "WELCOME10" not in new["prompt"] and new["prompt"].startswith("Facts:\n[1] ")  # fact numbers kept
    assert "\n[2] " in new["prompt"] and new["answer"] in new["prompt"]  # the target is still copied from [1]


def test_rag_fine_tune_learns_to_answer_from_the_facts(one_thread, retriever):
    recipe = RAG_RECIPES["smoke"]
    *_, untrained = rag_fine_tune(dataclasses.replace(recipe, steps=0), retriever=retriever)
    assert untrained["val_target_loss"] == untrained["val_target_loss_before"]
    *_, tuned = rag_fine_tune(recipe, retriever=retriever)
    # held-out (validation pairs') target-fact loss, measured 6.13 -> 5.47 nats in 60 steps; threshold: -0.4
    assert tuned["val_target_loss_before"] == pytest.approx(untrained["val_target_loss"])
    assert tuned["val_target_loss"] < untrained["val_target_loss"] - 0.4


def test_bad_inputs_say_what_to_do(retriever, en_split):
    _, test, groups = en_split
    with pytest.raises(ValueError, match="'fact', or 'intent' and 'answer'"):
        gold_fact_id({"question": "hi"})
    with pytest.raises(ValueError, match="no fact answers intent"):
        gold_fact_id({"intent": "weather", "answer": "sunny"})
    with pytest.raises(ValueError, match="lang must be"):
        answer_correct("x", "opening_hours", "fr")
    with pytest.raises(ValueError, match="pairs is empty"):
        evaluate_assistant(extractive_generate, [], "en", groups["seen_ids"])
    with pytest.raises(TypeError, match="set of fact ids"):
        evaluate_assistant(extractive_generate, test[:1], "en", "opening_hours")
    with pytest.raises(TypeError, match="string or a Reply"):
        evaluate_assistant(lambda q: 3, test[:1], "en", groups["seen_ids"], retriever)
    with pytest.raises(ValueError, match="non-empty list"):
        refusal_rate(extractive_generate, "What is the weather?")
    with pytest.raises(ValueError, match="no injection cases"):
        injection_rates(naive_generate, retriever, "fr")
    with pytest.raises(ValueError, match="build_prompt"):
        compact_rag_prompt("Question: hi\nAnswer:")
    with pytest.raises(ValueError, match="unknown RAG fine-tune recipe"):
        rag_fine_tune("huge")
    with pytest.raises(ValueError, match="steps >= 0"):
        rag_fine_tune(dataclasses.replace(RAG_RECIPES["smoke"], steps=-1))
    with pytest.raises(ValueError, match="both model and tokenizer"):
        rag_fine_tune("smoke", model=object())
    prompt = build_prompt("How much is the glass teapot?", retriever.search("How much is the glass teapot?"))
    assert compact_rag_prompt(prompt).startswith("Facts:\n[1] ")
