"""Tests for aigc_lib.apps.tuning: prompt masking, a frozen base, LoRA learning headline sentiment, bad inputs."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_gpt2_lm

from aigc_lib.apps.adcopy import make_slogans
from aigc_lib.apps.catalog import make_catalog
from aigc_lib.apps.finance import LABELS, headline_split
from aigc_lib.apps.lm_tasks import LABEL_WORDS, prompt_scores
from aigc_lib.apps.tuning import (
    GPT2_LORA_TARGETS,
    OFFLINE_LORA_TARGETS,
    add_lm_lora,
    encode_examples,
    generate_slogans,
    lora_finetune,
    sentiment_examples,
    slogan_examples,
    trainable_parameters,
    tune_sentiment,
)
from aigc_lib.lm import load_base_lm
from aigc_lib.lm.model import IGNORE_INDEX

CORPUS = ["Headline: Acme shares rise after strong results\nSentiment: positive\n\n",
          "Headline: Beta Bank cuts jobs as profit falls\nSentiment: negative\n\n",
          "Headline: Gamma holds annual meeting\nSentiment: neutral\n\n"] * 3
EXAMPLES = [("Headline: Acme shares rise\nSentiment:", " positive"),
            ("Headline: Beta Bank cuts jobs as profit falls sharply today\nSentiment:", " negative"),
            ("Headline: Gamma holds annual meeting\nSentiment:", " neutral")]


@pytest.fixture(scope="module")
def tiny(one_thread):
    """A randomly initialised one-block GPT-2 and a BPE tokenizer trained on a few lines: fast, no download."""
    return tiny_gpt2_lm(CORPUS, n_positions=64)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_prompt_tokens_are_masked_exactly(tiny):
    _, tok = tiny
    batch = encode_examples(tok, EXAMPLES)
    eos = tok.eos_token_id
    for row, (prompt, target) in enumerate(EXAMPLES):
        p, t = _ids(tok, prompt), _ids(tok, target) + [eos]
        n = len(p) + len(t)
        assert batch["input_ids"][row, :n].tolist() == p + t
        assert batch["labels"][row, :len(p)].tolist() == [IGNORE_INDEX] * len(p)  # the prompt: no loss
        assert batch["labels"][row, len(p):n].tolist() == t  # the target and EOS: the loss
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all() and batch["attention_mask"][row].sum() == n
    # too long for max_length: the oldest prompt tokens go, the whole target stays
    short = encode_examples(tok, EXAMPLES[1:2], max_length=8, add_eos=False)
    t = _ids(tok, EXAMPLES[1][1])
    assert short["input_ids"].shape[1] == 8 and short["labels"][0, -len(t):].tolist() == t
    assert short["input_ids"][0, :8 - len(t)].tolist() == _ids(tok, EXAMPLES[1][0])[-(8 - len(t)):]


def test_only_the_adapters_train_and_the_base_stays_frozen(tiny):
    model, tok = tiny
    base = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([_ids(tok, EXAMPLES[0][0])])
    with torch.no_grad():
        before = model(ids).logits
    n_base = sum(p.numel() for p in model.parameters())  # GPT-2 ties lm_head to wte: counted once
    lora = add_lm_lora(model, rank=4, alpha=8, targets=GPT2_LORA_TARGETS, seed=0)
    trainable, total = trainable_parameters(lora)
    d = 32  # per block r (d_in + d_out): c_attn 32->96, attn c_proj 32->32, c_fc 32->128, mlp c_proj 128->32
    assert trainable == 4 * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d)) and total == n_base + trainable
    assert all(("lora_" in n) == p.requires_grad for n, p in lora.named_parameters())
    with torch.no_grad():  # B = 0: the wrapped model starts as the base
        torch.testing.assert_close(lora(input_ids=ids).logits, before)
    start = {n: p.detach().clone() for n, p in lora.named_parameters()}
    history = lora_finetune(lora, tok, EXAMPLES, steps=3, batch_size=2, lr=1e-2, seed=0)
    assert [h["step"] for h in history["train"]] == [3]
    changed = {n for n, p in lora.named_parameters() if not torch.equal(p, start[n])}
    assert changed and all("lora_B" in n or "lora_A" in n for n in changed)
    assert any("lora_B" in n for n in changed)
    unwrapped = lora.unload()  # the base module without adapters: every weight as it was
    for k, v in unwrapped.state_dict().items():
        assert torch.equal(v, base[k]), k


def test_lora_finetune_is_deterministic_and_logs_to_tensorboard(tiny, tmp_path):
    model, tok = tiny
    runs = []
    for log_dir in (tmp_path / "a", tmp_path / "b"):
        lora = add_lm_lora(model, rank=2, targets=OFFLINE_LORA_TARGETS, seed=1)
        runs.append(lora_finetune(lora, tok, EXAMPLES * 2, steps=4, batch_size=4, lr=1e-2, seed=3,
                                  trackers=("tensorboard",), log_dir=str(log_dir)))
        lora.unload()
    assert runs[0]["train"] == runs[1]["train"]
    assert list((tmp_path / "a").rglob("events.out.tfevents.*")), "no TensorBoard event file written"


def test_examples_use_the_scoring_prompts():
    train, _ = headline_split(6, 1, "zh")
    pairs = sentiment_examples(train, "zh")
    assert all(p.endswith("\n情感：") and w == LABEL_WORDS["zh"][LABELS.index(h.label)]
               for (p, w), h in zip(pairs, train))
    slogans = make_slogans(make_catalog(n_items=3, n_new=0), langs=["en"], per_cell=1)
    pairs = slogan_examples(slogans, "en")
    assert len(pairs) == len(slogans) and all(p.endswith("Slogan:") and t == " " + s.text
                                              for (p, t), s in zip(pairs, slogans))


def test_bad_inputs_say_what_is_wrong(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="no examples"):
        encode_examples(tok, [])
    with pytest.raises(TypeError, match="add_lm_lora"):
        lora_finetune(model, tok, EXAMPLES, steps=2)
    with pytest.raises(ValueError, match="no module is named"):
        add_lm_lora(model, targets=("q_proj",))
    with pytest.raises(ValueError, match="rank"):
        add_lm_lora(model, rank=0)
    lora = add_lm_lora(model, rank=2)
    try:
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            lora_finetune(lora, tok, EXAMPLES, steps=0)
        with pytest.raises(ValueError, match="no examples"):
            lora_finetune(lora, tok, [], steps=2)
    finally:
        lora.unload()
    train, _ = headline_split(3, 1, "en")
    with pytest.raises(ValueError, match="lang must be one of"):
        sentiment_examples(train, "fr")
    with pytest.raises(ValueError, match="not in lang='zh'"):
        sentiment_examples(train, "zh")
    with pytest.raises(ValueError, match="no slogans in lang='zh'"):
        slogan_examples(make_slogans(make_catalog(n_items=2, n_new=0), langs=["en"], per_cell=1), "zh")
    with pytest.raises(ValueError, match="unknown sentiment recipe"):
        tune_sentiment("huge", "en", model, tok)
    with pytest.raises(ValueError, match="as many items"):
        generate_slogans(model, tok, make_catalog(n_items=2, n_new=0), ["calm"], ["short"], "en")


def test_generate_slogans_gives_one_line_per_request(tiny):
    model, tok = tiny
    items = make_catalog(n_items=2, n_new=0)
    out = generate_slogans(model, tok, items, ["calm", "premium"], ["short", "long"], "en", max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(s, str) and "\n" not in s for s in out)


def _correct_label_logprob(model, tok, headlines, lang):
    scores = prompt_scores(model, tok, [h.text for h in headlines], lang)  # (N, 3) in LABELS order
    return scores[torch.arange(len(headlines)), [LABELS.index(h.label) for h in headlines]].mean().item()


def test_lora_learns_the_label_words_on_the_smoke_base(one_thread):
    # measured on the smoke base (busy 2-core CPU, 60 steps, ~3 s): the mean log-probability of the right
    # label word on held-out templates goes from -11.4 (untrained, also wrapped but untrained) to -1.76;
    # threshold -3. Without the lora_finetune call it stays at -11.4 and this fails (checked by hand). The smoke
    # base learns the label words and their prior only, not the polarity (its accuracy stays at the majority
    # rate even after 300 steps): the next test needs the quick base for that.
    model, tok = load_base_lm(None, "smoke")
    train, test = headline_split(120, 60, "en")
    before = _correct_label_logprob(model, tok, test, "en")
    lora = add_lm_lora(model, rank=8, alpha=16, targets=OFFLINE_LORA_TARGETS)
    lora_finetune(lora, tok, sentiment_examples(train, "en"), steps=60, batch_size=16, lr=5e-3, add_eos=False)
    after = _correct_label_logprob(lora, tok, test, "en")
    assert before < -5 and after > -3, (before, after)
