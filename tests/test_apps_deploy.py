"""Deployment tools of notebook 14: Conv1D -> Linear, int8 quantisation, size, latency, perplexity, cost, logs."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from aigc_lib.apps import deploy
from aigc_lib.apps.deploy import (
    QuantRow,
    conv1d_to_linear,
    cost_per_1000_requests,
    latency_ms,
    model_size_mb,
    perplexity_on,
    quantization_table,
    quantize_dynamic_int8,
    read_scalars,
)
from aigc_lib.data import TensorLoader
from aigc_lib.lm.model import GPT, GPTConfig
from aigc_lib.lm.training import LMStep, lm_logits
from aigc_lib.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is far faster on a busy CPU

VOCAB = 97
TEXTS = ["the cat sat on the mat", "a model turns text into numbers", "int8 weights take a quarter of the bytes"]


def tiny_gpt2(seed: int = 0, n_embd: int = 64) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=n_embd, n_layer=2, n_head=2, bos_token_id=0,
                     eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def char_tokenizer(text: str, return_tensors: str | None = None) -> dict:
    """A stand-in tokenizer: one id per character."""
    ids = [ord(c) % VOCAB for c in text]
    return {"input_ids": torch.tensor([ids]) if return_tensors == "pt" else ids}


def ids(seed: int = 1, shape: tuple[int, int] = (2, 24)) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- int8 weights
def test_conv1d_to_linear_gives_the_same_logits_and_leaves_the_original():
    model = tiny_gpt2()
    linear = conv1d_to_linear(model)
    assert not any(type(m).__name__ == "Conv1D" for m in linear.modules())
    assert sum(isinstance(m, nn.Linear) for m in linear.modules()) == 2 * 4 + 1  # c_attn, c_proj, c_fc, c_proj; head
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"  # a copy was changed, not the model
    with torch.no_grad():
        torch.testing.assert_close(lm_logits(linear, ids()), lm_logits(model, ids()), rtol=0, atol=1e-5)


def test_int8_weights_are_within_half_a_step_and_logits_stay_close():
    model = tiny_gpt2()
    q = quantize_dynamic_int8(model)
    layer = q.transformer.h[0].mlp.c_fc
    assert type(layer).__name__ == "Linear" and layer.weight().dtype == torch.qint8  # dynamic quantized Linear
    w = model.transformer.h[0].mlp.c_fc.weight.t()  # Conv1D stores (in, out)
    scale = layer.weight().q_scale()
    # round to the nearest of 256 levels: the error is at most half a step (plus float rounding)
    assert (layer.weight().dequantize() - w).abs().max() <= scale / 2 + 1e-6
    with torch.no_grad():
        exact, approx = lm_logits(model, ids()), lm_logits(q, ids())
    error = (approx - exact).abs().max().item()
    assert 0 < error < 0.05 * exact.abs().max().item()  # measured: 1.5 % of the largest logit


def test_int8_works_on_the_course_gpt_and_refuses_models_without_linear_layers():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=1, n_head=2, n_embd=32)).eval()
    q = quantize_dynamic_int8(model)
    with torch.no_grad():
        torch.testing.assert_close(q(ids()), model(ids()), rtol=0, atol=0.05)
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_dynamic_int8(nn.Sequential(nn.Embedding(4, 4)))


def test_sizes_follow_the_bytes_per_weight():
    model = tiny_gpt2(n_embd=128)
    n_params = sum(p.numel() for p in model.parameters())  # the tied head counted once
    q = quantize_dynamic_int8(model)
    linear_weights = sum(m.weight.numel() for m in conv1d_to_linear(model).modules() if isinstance(m, nn.Linear))
    fp32, int8 = model_size_mb(model), model_size_mb(q)
    assert fp32 == pytest.approx(4 * n_params / 1e6, rel=0.03)  # float32: 4 bytes a weight, plus pickle headers
    # int8: 1 byte per Linear weight, the rest float32; the tied head is now an int8 copy beside the fp32 embedding
    expected = (4 * n_params + 1 * linear_weights) / 1e6 - 4 * (linear_weights - VOCAB * 128) / 1e6
    assert int8 == pytest.approx(expected, rel=0.05)
    assert int8 < 0.5 * fp32


# ----------------------------------------------------------------------------------------------- speed and quality
def test_perplexity_matches_the_cross_entropy_by_hand_and_a_uniform_model():
    model = tiny_gpt2()
    total, count = 0.0, 0
    for text in TEXTS:
        x = torch.tensor([char_tokenizer(text)["input_ids"]])
        with torch.no_grad():
            logits = model(x).logits
        total += F.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum").item()
        count += x.shape[1] - 1
    assert perplexity_on(model, TEXTS, char_tokenizer) == pytest.approx(math.exp(total / count), rel=1e-5)
    with torch.no_grad():
        model.transformer.wte.weight.zero_()  # the tied head: every logit 0, a uniform guess over the vocabulary
    assert perplexity_on(model, TEXTS, char_tokenizer) == pytest.approx(VOCAB, rel=1e-5)
    with pytest.raises(ValueError, match="list of texts"):
        perplexity_on(model, "one string", char_tokenizer)


def test_latency_is_the_median_time_per_generated_token(monkeypatch):
    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # repeats of 1 s, 3 s and 2 s: median 2 s
    monkeypatch.setattr(deploy, "perf_counter", lambda: next(ticks))
    model = tiny_gpt2()  # eos 0 may be predicted early; min_new_tokens still makes exactly 8 tokens
    assert latency_ms(model, "hello", n_tokens=8, repeats=3, tokenizer=char_tokenizer) == pytest.approx(2000 / 8)
    monkeypatch.undo()
    gpt = GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=1, n_head=2, n_embd=32))
    assert 0 < latency_ms(gpt, [1, 2, 3], n_tokens=4, repeats=2) < 1000
    with pytest.raises(ValueError, match="no tokenizer"):
        latency_ms(model, "hello")
    with pytest.raises(ValueError, match="n_tokens"):
        latency_ms(model, [1, 2], n_tokens=0)


def test_quantization_table_and_cost():
    model = tiny_gpt2()
    rows = quantization_table({"fp32": model, "int8": quantize_dynamic_int8(model)}, TEXTS, char_tokenizer,
                              n_tokens=4, repeats=2)
    assert [r.name for r in rows] == ["fp32", "int8"] and all(isinstance(r, QuantRow) for r in rows)
    assert rows[1].size_mb < rows[0].size_mb and all(r.ms_per_token > 0 for r in rows)
    assert rows[1].perplexity == pytest.approx(rows[0].perplexity, rel=0.02)  # measured: 0.05 % apart
    # 1000 requests x 50 tokens x 0.02 s = 1000 s of device time; at 3.6 per hour that is 1.0
    assert cost_per_1000_requests(0.02, 50, 3.6) == pytest.approx(1.0)
    assert cost_per_1000_requests(0.02, 50, 0.0) == 0.0
    with pytest.raises(ValueError, match="price_per_hour"):
        cost_per_1000_requests(0.02, 50, -1.0)


# ----------------------------------------------------------------------------------------------- experiment logs
def train_logged(project_dir, trackers: tuple[str, ...]) -> dict:
    torch.manual_seed(0)
    rows = torch.randint(0, VOCAB, (32, 17), generator=torch.Generator().manual_seed(0))
    model = tiny_gpt2(n_embd=32).train()
    cfg = TrainConfig(max_steps=6, log_every=1, progress=False, device="cpu", precision="fp32",
                      trackers=trackers, project_dir=str(project_dir))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    return Trainer(model, optimizer, LMStep(), TensorLoader(rows, batch_size=8, seed=0), cfg).fit()


def test_read_scalars_gives_back_the_trainers_loss_curve(tmp_path):
    history = train_logged(tmp_path, ("tensorboard",))
    logged = read_scalars(tmp_path)
    expected = [(row["step"], row["loss"]) for row in history["train"]]
    assert [step for step, _ in logged["loss"]] == [step for step, _ in expected] == list(range(1, 7))
    # TensorBoard stores float32: equal to the history after rounding to float32
    assert [value for _, value in logged["loss"]] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert expected[-1][1] < expected[0][1]  # and it is a curve that went down
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_scalars(tmp_path / "empty")


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb installed: it would try to log in")
def test_a_missing_wandb_is_skipped_and_tensorboard_still_written(tmp_path):
    history = train_logged(tmp_path, ("tensorboard", "wandb"))
    assert len(history["train"]) == 6
    assert [step for step, _ in read_scalars(tmp_path)["loss"]] == list(range(1, 7))
