"""Tests for aigc_lib.apps.lm_tasks: label scoring, prompt classification, calibration, the generate adapter."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_gpt2_lm

from aigc_lib.apps.finance import LABELS
from aigc_lib.apps.lm_tasks import (
    CONTENT_FREE,
    LABEL_WORDS,
    classify_by_prompt,
    label_logprobs,
    lm_generate,
    prompt_scores,
    sentiment_prompt,
)

CORPUS = ["Headline: Acme shares rise after strong results\nSentiment: positive\n\n",
          "Headline: Beta Bank cuts jobs as profit falls\nSentiment: negative\n\n",
          "Headline: Gamma holds annual meeting\nSentiment: neutral\n\n",
          "新闻标题：公司利润大幅增长\n情感：积极\n\n新闻标题：银行裁员\n情感：消极\n\n"] * 3


@pytest.fixture(scope="module")
def lm(one_thread):
    return tiny_gpt2_lm(CORPUS, n_positions=128)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_label_logprobs_matches_hand_computation(lm):
    model, tokenizer = lm
    word = " ab"
    assert len(_ids(tokenizer, word)) == 2  # the label of two tokens the brief asks for (this tokenizer's split)
    prompts = ["Headline: Acme shares rise\nSentiment:", "Headline: x"]
    words = [word, " positive", "积极"]  # 2, several and (bytes of) Chinese tokens
    got = label_logprobs(model, tokenizer, prompts, words, batch_size=4)  # mixes lengths -> padding in a batch
    assert got.shape == (2, 3)
    for i, prompt in enumerate(prompts):
        for k, w in enumerate(words):
            p, t = _ids(tokenizer, prompt), _ids(tokenizer, w)
            with torch.no_grad():
                logp = model(torch.tensor([p + t])).logits[0].log_softmax(-1)
            expected = sum(logp[len(p) - 1 + j, t[j]] for j in range(len(t)))
            assert got[i, k].item() == pytest.approx(expected.item(), abs=1e-4)
    assert (got < 0).all()
    torch.testing.assert_close(label_logprobs(model, tokenizer, prompts, words, batch_size=1), got,
                               atol=1e-4, rtol=0)


def test_label_words_follow_labels_order():
    assert [w.strip() for w in LABEL_WORDS["en"]] == list(LABELS)
    assert LABEL_WORDS["zh"] == ("消极", "中性", "积极")


def test_prompts_zero_and_few_shot():
    assert sentiment_prompt("Acme rises", "en") == "Headline: Acme rises\nSentiment:"
    few = sentiment_prompt("Acme rises", "en", shots=[("Beta falls", "negative")])
    assert few == "Headline: Beta falls\nSentiment: negative\n\nHeadline: Acme rises\nSentiment:"
    assert sentiment_prompt("利润增长", "zh", [("银行裁员", "negative")]) == \
        "新闻标题：银行裁员\n情感：消极\n\n新闻标题：利润增长\n情感："


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_classify_probs_sum_to_one_in_labels_order(lm, lang):
    model, tokenizer = lm
    heads = ["Acme shares rise", "Beta Bank cuts jobs"] if lang == "en" else ["公司利润大幅增长", "银行裁员"]
    shots = [(heads[1], "negative")]
    labels, probs = classify_by_prompt(model, tokenizer, heads, lang, shots=shots)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    assert labels == [LABELS[i] for i in probs.argmax(1)]
    prompts = [sentiment_prompt(h, lang, shots) for h in heads]
    reversed_scores = label_logprobs(model, tokenizer, prompts, LABEL_WORDS[lang][::-1])
    np.testing.assert_allclose(probs, reversed_scores.flip(-1).softmax(-1).numpy(), atol=1e-6)


def test_calibration_subtracts_content_free_logprobs(lm):
    model, tokenizer = lm
    heads, shots = ["Acme shares rise", "Gamma holds meeting"], [("Beta falls", "negative")]
    raw = prompt_scores(model, tokenizer, heads, "en", shots)
    cal = prompt_scores(model, tokenizer, heads, "en", shots, calibrate=True)
    free = label_logprobs(model, tokenizer, [sentiment_prompt(CONTENT_FREE, "en", shots)], LABEL_WORDS["en"])
    torch.testing.assert_close(raw - cal, free.expand(2, 3), atol=1e-5, rtol=0)
    assert not torch.allclose(free, torch.zeros_like(free))
    # the content-free prompt itself becomes uniform after calibration
    _, probs = classify_by_prompt(model, tokenizer, [CONTENT_FREE], "en", shots, calibrate=True)
    np.testing.assert_allclose(probs, 1 / 3, atol=1e-5)


def test_lm_generate_returns_only_new_text_up_to_stop(lm):
    model, tokenizer = lm
    prompt = "Headline: Acme shares rise\nSentiment:"
    full = lm_generate(model, tokenizer, max_new_tokens=12, stop=None)(prompt)
    ids = _ids(tokenizer, prompt)  # reference: greedy without a cache, full forward each step
    new = []
    with torch.no_grad():
        for _ in range(12):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    assert full == tokenizer.decode(new) and len(full) >= 4
    stop = full[2:4]
    cut = lm_generate(model, tokenizer, max_new_tokens=12, stop=stop)(prompt)
    assert cut == full[:full.index(stop)] and stop not in cut


def test_bad_inputs_raise(lm):
    model, tokenizer = lm
    with pytest.raises(ValueError, match="at least one prompt"):
        label_logprobs(model, tokenizer, [], [" positive"])
    with pytest.raises(ValueError, match="at least one prompt"):
        label_logprobs(model, tokenizer, ["Headline: x"], [])
    with pytest.raises(TypeError, match="lists"):
        label_logprobs(model, tokenizer, "Headline: x", [" positive"])
    with pytest.raises(ValueError, match="empty"):
        label_logprobs(model, tokenizer, [""], [" positive"])
    with pytest.raises(ValueError, match="lang must be one of"):
        classify_by_prompt(model, tokenizer, ["x"], lang="fr")
    with pytest.raises(ValueError, match="non-empty list"):
        classify_by_prompt(model, tokenizer, [], lang="en")
    with pytest.raises(ValueError, match="shot's label"):
        sentiment_prompt("x", "en", shots=[("y", "bullish")])
    with pytest.raises(ValueError, match="empty prompt"):
        lm_generate(model, tokenizer)("")
    with pytest.raises(ValueError, match="max_new_tokens"):
        lm_generate(model, tokenizer, max_new_tokens=0)


def test_lm_generate_plugs_into_guarded_rag(lm):
    from aigc_lib.apps.guardrails import Guardrails, Retriever, build_prompt, rag_answer

    model, tokenizer = lm
    generate, retriever = lm_generate(model, tokenizer, max_new_tokens=8), Retriever()
    question = "How long does delivery take?"
    prompt = build_prompt(question, retriever.search(question, k=3))
    assert len(_ids(tokenizer, prompt)) > 128  # longer than the model: the oldest tokens are dropped
    answer = rag_answer(question, generate, retriever)
    assert isinstance(answer, str) and "\n" not in answer and answer == generate(prompt)
    reply = Guardrails(generate, retriever).reply(question)
    assert reply.reason in {"grounded", "ungrounded", "low_score"}  # a random model's answer is judged, not trusted
