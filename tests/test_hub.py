"""Pretrained models: hub when online, else the cache, else a local folder made with save_pretrained."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from aigc_lib.hub import ModelNotAvailableError, find_source, load_pretrained


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return folder, model


def test_offline_loads_the_local_folder_and_says_so(local_model, monkeypatch, capsys):
    folder, model = local_model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_pretrained(AutoModelForCausalLM, "gpt2-this-is-not-cached", local_dir=folder)
    assert "local folder" in capsys.readouterr().out
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    tok = load_pretrained(PreTrainedTokenizerFast, None, local_dir=folder)
    assert tok("hello world")["input_ids"] == [1, 2]


def test_online_prefers_the_hub(local_model):
    folder, _ = local_model
    assert find_source("gpt2", folder, online=True).kind == "hub"
    assert find_source(None, folder, online=True).kind == "local"


def test_unknown_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match=r"offline.*local_dir.*never published"):
        load_pretrained(AutoModelForCausalLM, "gpt3-medium")


def test_folder_not_written_by_save_pretrained(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotAvailableError, match="not written by save_pretrained"):
        find_source(None, tmp_path, online=False)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        find_source(None, tmp_path / "missing", online=False)
    with pytest.raises(ValueError, match="give a hub id"):
        find_source(None, None)
