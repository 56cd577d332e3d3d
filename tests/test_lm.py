"""aigc_lib.lm: our GPT-2 against transformers', tokenizers, data, loss, training, decoding and metrics."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from aigc_lib import lm
from aigc_lib.train import EarlyStopping, TrainConfig, Trainer

VOCAB = 300


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A randomly initialised Hugging Face GPT-2, saved locally: the offline stand-in for 'gpt2'."""
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=VOCAB, n_positions=64,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    folder = tmp_path_factory.mktemp("hf-gpt2")
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return AutoModelForCausalLM.from_pretrained(hf_dir).eval()


@pytest.fixture(scope="module")
def ours(hf_dir):
    return lm.gpt_from_hf(hf_dir).eval()


def tokens(*shape, seed=0):
    return torch.randint(0, VOCAB - 1, shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("vocab_multiple", [1, 64])
def test_logits_match_transformers_gpt2(hf_dir, hf_model, vocab_multiple):
    ours = lm.gpt_from_hf(hf_dir, vocab_multiple=vocab_multiple).eval()
    x = tokens(3, 50)
    with torch.no_grad():
        diff = (hf_model(x).logits - ours(x)).abs().max().item()
    assert ours(x).shape == (3, 50, VOCAB)
    assert diff < 1e-5, diff  # float32 rounding only (measured 2e-7)
    with torch.no_grad():  # the loss computed inside forward (for torch.compile) is the shifted loss
        fused = ours(x[:, :-1], targets=x[:, 1:])
        assert torch.allclose(fused, lm.causal_lm_loss(ours(x), x), atol=1e-6)
        assert torch.allclose(lm.lm_loss(ours, x), lm.lm_loss(hf_model, x), atol=1e-5)


def test_save_pretrained_round_trip(ours, hf_model, tmp_path):
    ours.save_pretrained(tmp_path)
    back = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = tokens(2, 30, seed=1)
    with torch.no_grad():
        assert torch.equal(back(x).logits, hf_model(x).logits)
    assert back.config.model_type == "gpt2" and back.config.tie_word_embeddings


def test_weights_are_tied_and_counted_once(ours):
    assert ours.lm_head.weight is ours.transformer.wte.weight
    cfg = ours.config
    per_block = 12 * cfg.n_embd**2 + 13 * cfg.n_embd  # attention 4C^2+4C, MLP 8C^2+5C, two LayerNorms 4C
    expected = cfg.vocab_size * cfg.n_embd + cfg.block_size * cfg.n_embd + cfg.n_layer * per_block + 2 * cfg.n_embd
    assert ours.num_parameters() == expected == sum(p.numel() for p in GPT2LMHeadModel(lm.hf_config(cfg)).parameters())


def test_attention_weights_are_causal_and_match_forward():
    torch.manual_seed(0)
    attn = lm.CausalSelfAttention(lm.GPTConfig(n_embd=32, n_head=4, block_size=16)).eval()
    x = torch.randn(2, 10, 32)
    w = attn.attention_weights(x)
    assert w.shape == (2, 4, 10, 10)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 10), atol=1e-6)
    assert (w.triu(1) == 0).all()  # nothing attends to the future
    _, _, v = attn._heads(x)
    manual = (w @ v).transpose(1, 2).reshape(2, 10, 32)
    assert torch.allclose(attn.c_proj(manual), attn(x), atol=1e-5)


def test_future_tokens_do_not_change_earlier_logits(ours):
    x = tokens(1, 20)
    y = x.clone()
    y[0, 15:] = (y[0, 15:] + 1) % (VOCAB - 1)
    with torch.no_grad():
        assert torch.allclose(ours(x)[:, :15], ours(y)[:, :15], atol=1e-6)


def test_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="divisible"):
        lm.GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown GPT size 'gpt3-medium'"):
        lm.GPTConfig.from_name("gpt3-medium")
    assert lm.GPTConfig.from_name("gpt2", vocab_multiple=64).padded_vocab_size == 50304
    model = lm.GPT(lm.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="longer than the model's block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_gpt_from_hf_rejects_other_architectures():
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, vocab_size=50))
    with pytest.raises(ValueError, match="converts GPT-2"):
        lm.gpt_from_hf(llama)


# ------------------------------------------------------------------------------------------ tokenizers
def test_char_tokenizer_round_trip_and_errors(tmp_path):
    tok = lm.CharTokenizer("hello world")
    assert tok.vocab_size == len(set("hello world"))
    assert tok.decode(tok.encode("low hello")) == "low hello"
    with pytest.raises(ValueError, match=r"\['z'\] are not in"):
        tok.encode("zoo")
    tok.save(tmp_path / "chars.json")
    assert lm.CharTokenizer.load(tmp_path / "chars.json").itos == tok.itos
    with pytest.raises(ValueError, match="non-empty"):
        lm.CharTokenizer("")


def test_bpe_tokenizer_saves_as_a_transformers_tokenizer(tmp_path):
    text = "The kettle is warm. The teapot is blue. Return the cups within thirty days. " * 40
    tok = lm.train_bpe_tokenizer(text, vocab_size=400, save_dir=tmp_path)
    assert 257 <= len(tok) <= 400
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    sample = "Thé teapot costs 12€ — 茶壶!"  # unseen characters still encode (byte level): nothing is unknown
    assert loaded.decode(loaded.encode(sample)) == sample
    assert loaded.eos_token == lm.EOS and loaded.pad_token_id == loaded.eos_token_id
    assert len(loaded.encode("The teapot")) < len("The teapot")  # merges learned
    with pytest.raises(ValueError, match="no text"):
        lm.train_bpe_tokenizer(["  "], vocab_size=300)


# ------------------------------------------------------------------------------------------ data
def test_pack_blocks_rows_and_overlap():
    rows = lm.pack_blocks(list(range(23)), block_size=4)
    # a row's last token (a target only) is the next row's first input: every token is predicted once
    assert rows.shape == (5, 5) and rows[1].tolist() == [4, 5, 6, 7, 8] and rows[-1, -1] == 20
    overlapped = lm.pack_blocks(torch.arange(23), block_size=4, stride=2)
    assert overlapped.shape == (10, 5) and overlapped[1, 0] == 2
    with pytest.raises(ValueError, match="fewer than one block"):
        lm.pack_blocks([1, 2, 3], block_size=4)


class _WordTokenizer:
    """A stand-in tokenizer: one id per whitespace-separated word, EOS = 0."""

    eos_token_id = 0

    def __init__(self):
        self.vocab = {"<eos>": 0}

    def encode(self, text):
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]


def test_encode_qa_masks_the_prompt_and_collator_masks_padding():
    tok = _WordTokenizer()
    pairs = [{"question": "when do you open", "answer": "at nine"}, {"question": "hi", "answer": "hello there friend"}]
    examples = lm.encode_qa(tok, pairs, template="Q: {question} A:")
    first = examples[0]
    prompt_len = 6  # "Q: when do you open A:"
    assert first["labels"][:prompt_len] == [lm.IGNORE_INDEX] * prompt_len
    assert first["labels"][prompt_len:] == first["input_ids"][prompt_len:]
    assert first["input_ids"][-1] == tok.eos_token_id  # the model learns to stop
    batch = lm.CausalLMCollator(pad_token_id=0, pad_to_multiple_of=4)(examples)
    assert batch["input_ids"].shape == (2, 12)  # longest is 9 tokens, rounded up to 12
    n0 = len(first["input_ids"])
    assert batch["attention_mask"][0].tolist() == [1] * n0 + [0] * (12 - n0)
    assert (batch["labels"][0, n0:] == lm.IGNORE_INDEX).all()
    tok.pad_token_id = 0
    chunks = lm.qa_batches(tok, pairs * 3, batch_size=4, template="Q: {question} A:")
    assert [len(b["input_ids"]) for b in chunks] == [4, 2] and chunks[0]["labels"][0].tolist()[:n0] == first["labels"]
    unmasked = lm.encode_qa(tok, pairs, template="Q: {question} A:", mask_prompt=False)
    assert unmasked[0]["labels"] == unmasked[0]["input_ids"]
    shot = {**pairs[0], "context": "Q: hi A: hello there friend <eos> "}  # a few-shot example, masked too
    with_context = lm.encode_qa(tok, [shot], template="Q: {question} A:")[0]
    assert with_context["labels"].count(lm.IGNORE_INDEX) == prompt_len + 7
    assert with_context["input_ids"][prompt_len + 7:] == first["input_ids"][prompt_len:]
    with pytest.raises(ValueError, match="no room for its answer"):
        lm.encode_qa(tok, [shot], template="Q: {question} A:", max_length=10)


# ------------------------------------------------------------------------------------------ loss
def test_causal_lm_loss_equals_transformers_loss_with_masks(hf_model):
    x = tokens(2, 12, seed=3)
    labels = x.clone()
    labels[0, :5] = lm.IGNORE_INDEX  # a masked prompt
    labels[1, 9:] = lm.IGNORE_INDEX  # padding
    with torch.no_grad():
        out = hf_model(x, labels=labels)
        ours = lm.causal_lm_loss(out.logits, labels)
        unshifted = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert torch.allclose(ours, out.loss, atol=1e-6)
    assert not torch.allclose(unshifted, out.loss, atol=1e-3)  # the seed code's loss (no shift) is another number


def test_perplexity_counts_each_unmasked_token_once(ours):
    x = tokens(2, 16, seed=4)
    labels = x.clone()
    labels[1, 10:] = lm.IGNORE_INDEX
    batch = {"input_ids": x, "labels": labels}
    with torch.no_grad():
        logits = ours(x)
    per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="none",
                                ignore_index=-100)
    n = int((labels[:, 1:] != -100).sum())
    result = lm.perplexity(ours, [batch, batch])
    assert result["tokens"] == 2 * n == 2 * (15 + 9)
    assert math.isclose(result["loss"], per_token.sum().item() / n, rel_tol=1e-5)
    assert math.isclose(result["ppl"], math.exp(result["loss"]), rel_tol=1e-9)
    with pytest.raises(ValueError, match="no tokens"):
        lm.perplexity(ours, [])


def test_lm_loss_works_for_any_module_that_returns_logits():
    class Bigram(torch.nn.Module):  # a learner's own model: ids -> logits, nothing else
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(VOCAB, VOCAB)

        def forward(self, ids):
            return self.table(ids)

    model, x = Bigram(), tokens(2, 9)
    expected = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    assert torch.allclose(lm.lm_loss(model, x), expected)


def test_optimizer_decays_only_matrices_and_skips_frozen():
    model = lm.GPT(lm.GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8))
    model.transformer.wpe.weight.requires_grad_(False)
    opt = lm.lm_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])
    assert all(p is not model.transformer.wpe.weight for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == sum(1 for p in model.parameters() if p.requires_grad)


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lm.warmup_cosine(opt, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert min(lrs) >= 0.1 - 1e-9 and lrs == sorted(lrs[:4]) + sorted(lrs[4:], reverse=True)


# ------------------------------------------------------------------------------------------ training
def _tiny_blocks():
    tok = lm.CharTokenizer("abcdefgh ")
    ids = tok.encode("abc defg habc defg h" * 30)
    return tok, lm.pack_blocks(ids, block_size=16, stride=4)


@pytest.mark.parametrize("kind", ["ours", "transformers"])
def test_lm_step_trains_our_model_and_hf_models(kind):
    from aigc_lib.data import TensorLoader

    torch.manual_seed(0)
    tok, blocks = _tiny_blocks()
    cfg = lm.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32)
    model = lm.GPT(cfg) if kind == "ours" else GPT2LMHeadModel(lm.hf_config(cfg))
    opt = lm.lm_optimizer(model, lr=3e-3)
    before = lm.perplexity(model, blocks.split(32))["loss"]
    trainer = Trainer(model, opt, lm.LMStep(), TensorLoader(blocks, batch_size=16),
                      TrainConfig(max_steps=60, device="cpu", progress=False, max_grad_norm=1.0, grad_accum_steps=2),
                      schedulers={"model": lm.warmup_cosine(opt, 5, 60)})
    trainer.fit()
    after = lm.perplexity(model, blocks.split(32))["loss"]
    assert before > math.log(tok.vocab_size) - 0.3  # starts near uniform
    assert after < 0.5 * before  # a repeated 9-character pattern is easy: measured 2.2 -> 0.3-0.5


def test_early_stopping_on_validation_loss_triggers_when_overfitting():
    from aigc_lib.data import TensorLoader

    torch.manual_seed(0)
    tok = lm.CharTokenizer("abcdefghijklmnop ")
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, tok.vocab_size, (8, 17), generator=g)  # random strings: nothing generalises
    val = torch.randint(0, tok.vocab_size, (8, 17), generator=g)
    model = lm.GPT(lm.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=64))
    stop = EarlyStopping("val_loss", patience=2)
    trainer = Trainer(model, lm.lm_optimizer(model, lr=3e-3, weight_decay=0.0), lm.LMStep(),
                      TensorLoader(train, batch_size=8), TrainConfig(max_steps=400, eval_every=10, device="cpu",
                                                                     progress=False),
                      eval_fn=lm.lm_eval_fn([val]), hooks=[stop])
    trainer.fit()
    assert stop.stopped_at is not None and stop.stopped_at < 400
    final = lm.perplexity(model, [val])["loss"]
    assert final == pytest.approx(stop.best, rel=1e-4)  # best weights restored


# ------------------------------------------------------------------------------------------ decoding
def test_filters_match_transformers_logits_processors():
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    previous = torch.randint(0, 50, (3, 7))
    ids = torch.zeros(3, 1, dtype=torch.long)
    assert torch.allclose(lm.apply_repetition_penalty(logits, previous, 1.3),
                          RepetitionPenaltyLogitsProcessor(1.3)(previous, logits.clone()))
    ours = lm.filter_logits(logits, temperature=0.7, top_k=10)
    theirs = TopKLogitsWarper(10)(ids, TemperatureLogitsWarper(0.7)(ids, logits.clone()))
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.allclose(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])
    for p in (0.5, 0.9):
        ours = lm.filter_logits(logits, top_p=p)
        theirs = TopPLogitsWarper(p)(ids, logits.clone())
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), p
    with pytest.raises(ValueError, match="temperature must be > 0"):
        lm.filter_logits(logits, temperature=0)


@pytest.mark.parametrize("settings", [{}, {"num_beams": 4}, {"repetition_penalty": 1.5}])
def test_our_decoding_loop_matches_transformers_generate(ours, hf_model, settings):
    for seed in range(3):
        prompt = tokens(6, seed=seed)
        assert torch.equal(lm.generate(ours, prompt, 15, **settings), lm.generate(hf_model, prompt, 15, **settings))


def test_seeded_sampling_repeats_and_leaves_global_rng_alone(ours):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = lm.generate(ours, tokens(5), 20, do_sample=True, top_p=0.9, seed=7)
    b = lm.generate(ours, tokens(5), 20, do_sample=True, top_p=0.9, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(1), expected_next)
    c = lm.generate(ours, tokens(5), 20, do_sample=True, seed=8, num_return_sequences=4)
    assert c.shape == (4, 25) and len({tuple(r.tolist()) for r in c}) > 1
    with pytest.raises(ValueError, match="not both"):
        lm.generate(ours, tokens(5), 5, do_sample=True, num_beams=2)


def test_complete_cuts_at_eos_and_stop():
    tok = lm.CharTokenizer("ab\n")
    tok.eos_token_id = tok.stoi["\n"]
    torch.manual_seed(0)
    model = lm.GPT(lm.GPTConfig(vocab_size=3, block_size=32, n_layer=1, n_head=1, n_embd=8))
    for text in lm.complete(model, tok, ["ab", "ba"], 20, do_sample=True, seed=0):
        assert "\n" not in text and set(text) <= {"a", "b"}


# ------------------------------------------------------------------------------------------ metrics
def test_text_metrics():
    assert lm.distinct_n(["a b a b"], 1) == 0.5
    assert lm.distinct_n(["a b c", "a b d"], 2) == 0.75  # (a b), (b c), (b d) of 4 bigrams
    assert lm.bleu(["the cups ship in three days"], ["the cups ship in three days"]) == pytest.approx(100)
    assert lm.bleu(["completely unrelated words here"], ["the cups ship in three days"]) < 5
    scores = lm.rouge(["the cups ship today"], ["the cups ship tomorrow"])
    assert scores["rouge1"] == pytest.approx(0.75) and scores["rouge2"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        lm.bleu(["a"], ["a", "b"])


# ------------------------------------------------------------------------------------------ offline base
def test_offline_base_is_a_from_pretrained_folder_and_cached(tmp_path, capsys):
    recipe = lm.BaseRecipe(corpus="fables", vocab_size=300, n_layer=1, n_head=2, n_embd=32, block_size=32,
                           steps=30, batch_size=8, lr=3e-3, warmup_steps=3, val_fraction=0.1)
    folder = lm.build_offline_base(recipe, tmp_path, device="cpu", progress=False)
    history = __import__("json").loads((folder / "pretraining.json").read_text())["history"]
    assert history["train"][-1]["loss"] < history["train"][0]["loss"]
    model, tokenizer = lm.load_causal_lm(None, folder)
    assert isinstance(model, GPT2LMHeadModel) and tokenizer.eos_token == lm.EOS
    assert model.config.eos_token_id == model.generation_config.eos_token_id == tokenizer.eos_token_id
    text = lm.complete(model, tokenizer, "The fox", 10, do_sample=True, seed=0)[0]
    assert isinstance(text, str)
    capsys.readouterr()
    assert lm.build_offline_base(recipe, tmp_path) == folder
    assert "cached" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown base recipe"):
        lm.build_offline_base("huge", tmp_path)
    # offline and not cached, a hub id falls back to this base model (and says so)
    model, _ = lm.load_base_lm("aigc-course/not-a-model", recipe, online=False, cache_dir=tmp_path)
    assert "using the offline base model" in capsys.readouterr().out
    assert model.config.n_embd == 32


def test_training_memory_counts_trainable_state_only():
    model = lm.GPT(lm.GPTConfig(vocab_size=100, block_size=16, n_layer=1, n_head=2, n_embd=8))
    full = lm.training_memory(model)
    assert full["total_mib"] == pytest.approx(4 * full["weights_mib"])  # weights + grads + 2 Adam moments
    for p in model.parameters():
        p.requires_grad_(False)
    model.lm_head.weight.requires_grad_(True)  # tied: the embedding, counted once
    part = lm.training_memory(model)
    share = 100 * 8 / model.num_parameters()
    assert part["grads_mib"] == pytest.approx(full["weights_mib"] * share)


# ------------------------------------------------------------------------------------------ KV cache
def _cached_logits(model, ids, chunks):
    """Logits of ``ids`` (B, T) fed through a KVCache in pieces of the given lengths."""
    cache, out, start = lm.model.KVCache(), [], 0
    for n in chunks:
        out.append(model(ids[:, start:start + n], kv_cache=cache))
        start += n
    assert len(cache) == start
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("chunks", [[1] * 12, [5] + [1] * 7, [4, 3, 5]])
def test_kv_cache_logits_equal_the_full_forward_and_transformers_past_key_values(ours, hf_model, chunks):
    ids = tokens(3, 12)  # batch of 3
    with torch.no_grad():
        cached = _cached_logits(ours, ids, chunks)
        torch.testing.assert_close(cached, ours(ids))
        # the same chunks through Hugging Face's cache (`past_key_values`; `cache` in newer transformers)
        name = "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"
        past, hf_out, start = None, [], 0
        for n in chunks:
            step = hf_model(ids[:, start:start + n], use_cache=True, **{name: past})
            past, start = getattr(step, name), start + n
            hf_out.append(step.logits)
    torch.testing.assert_close(cached, torch.cat(hf_out, dim=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("settings", [{}, {"do_sample": True, "top_k": 20, "seed": 3}, {"num_beams": 3},
                                      {"num_beams": 3, "num_return_sequences": 2},
                                      {"repetition_penalty": 1.3}])
def test_generate_with_and_without_cache_gives_the_same_tokens_on_a_batch(ours, settings):
    prompt = tokens(4, 7, seed=1)  # batch > 1
    with_cache = lm.generate(ours, prompt, 20, **settings)
    assert torch.equal(with_cache, lm.generate(ours, prompt, 20, use_cache=False, **settings))
    assert with_cache.shape == (4 * settings.get("num_return_sequences", 1), 27)


def test_kv_cache_respects_block_size():
    torch.manual_seed(0)
    model = lm.GPT(lm.GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    ids = torch.randint(20, (2, 8))
    cache = lm.model.KVCache()
    with torch.no_grad():
        model(ids, kv_cache=cache)  # the cache now holds all 8 learned positions
        with pytest.raises(ValueError, match=r"8 cached \+ 1 new = 9 tokens is longer than .* block_size 8"):
            model(ids[:, :1], kv_cache=cache)
    # generate crops the context past block_size (a sliding window) and recomputes the cache: the same tokens
    for settings in ({}, {"num_beams": 2}, {"do_sample": True, "seed": 0}):
        long = lm.generate(model, ids[:, :3], 25, **settings)
        assert long.shape == (2, 28)
        assert torch.equal(long, lm.generate(model, ids[:, :3], 25, use_cache=False, **settings))
    cache.reset()
    assert len(cache) == 0
