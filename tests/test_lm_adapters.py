"""aigc_lib.lm.adapters: bottleneck adapters (Houlsby et al., 2019) on Hugging Face's GPT-2 and on our GPT."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from aigc_lib import lm

VOCAB = 120


@pytest.fixture(scope="module")
def hf_gpt2():
    torch.manual_seed(0)
    # initializer_range 0.2 (GPT-2: 0.02): the frozen tied head gives logits large enough for adapters to move
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=32,
                        initializer_range=0.2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    return GPT2LMHeadModel(config).eval()


def ids(*shape, seed=0):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def test_adapter_is_identity_at_init_and_residual():
    adapter = lm.BottleneckAdapter(16, 4)
    h = torch.randn(2, 3, 16)
    assert torch.equal(adapter(h), h)  # W_up = 0: exactly the identity
    with torch.no_grad():
        adapter.up.weight.normal_()
    expected = h + adapter.up(torch.nn.functional.gelu(adapter.down(h)))  # h + W_up f(W_down h)
    torch.testing.assert_close(adapter(h), expected)


@pytest.mark.parametrize("where", [lm.HOULSBY, lm.PFEIFFER])
def test_adapted_gpt2_starts_at_base_and_counts(hf_gpt2, where):
    model = copy.deepcopy(hf_gpt2)
    x = ids(2, 10)
    with torch.no_grad():
        before = model(input_ids=x).logits
    adapters = lm.add_bottleneck_adapters(model, bottleneck=4, where=where)
    assert len(adapters) == len(where) * hf_gpt2.config.n_layer
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    formula = len(adapters) * (2 * 32 * 4 + 4 + 32)  # n (2dm + m + d)
    assert trainable == lm.bottleneck_adapter_params(32, 4, len(adapters)) == formula
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=x).logits, before, rtol=0, atol=0)


def test_gradient_reaches_only_adapters(hf_gpt2):
    model = copy.deepcopy(hf_gpt2)
    adapters = lm.add_bottleneck_adapters(model, bottleneck=4)
    x = ids(2, 10, seed=1)
    labels = x.clone()
    loss = lm.causal_lm_loss(model(input_ids=x).logits, labels)
    loss.backward()
    adapter_params = {id(p) for a in adapters for p in a.parameters()}
    for name, p in model.named_parameters():
        if id(p) in adapter_params:
            assert p.requires_grad
        else:
            assert not p.requires_grad and p.grad is None, name
    assert all(a.up.weight.grad.abs().sum() > 0 for a in adapters)  # W_up = 0 still gets a gradient


def test_adapters_learn(hf_gpt2):
    model = copy.deepcopy(hf_gpt2).train()
    lm.add_bottleneck_adapters(model, bottleneck=8)
    x = ids(4, 12, seed=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = lm.causal_lm_loss(model(input_ids=x).logits, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], (losses[0], losses[-1])  # measured 5.59 -> 2.99


def test_works_on_our_gpt_and_rejects_twice(hf_gpt2):
    ours = lm.GPT(lm.GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    x = ids(1, 8)
    with torch.no_grad():
        before = ours(x)
    lm.add_bottleneck_adapters(ours, bottleneck=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), before, rtol=0, atol=0)
    with pytest.raises(ValueError, match="already"):
        lm.add_bottleneck_adapters(ours, bottleneck=2)
    with pytest.raises(ValueError):
        lm.add_bottleneck_adapters(copy.deepcopy(hf_gpt2), bottleneck=0)
