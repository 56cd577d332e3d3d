"""Fixtures shared by the test modules."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread for a module's tiny models and small matrices, restored afterwards. On a busy 2-core machine
    two OpenMP threads that spin waiting on each other made such work 5-250x slower; the results are identical."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_gpt2_lm(corpus: list[str], n_positions: int = 64):
    """A randomly initialised one-block GPT-2 and a BPE tokenizer (300 tokens) trained on ``corpus``: a causal LM in
    milliseconds, no download (the chapter 14 LM tests)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from aigc_lib.lm import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(corpus, vocab_size=300)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(tokenizer), n_positions=n_positions,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).eval(), tokenizer
