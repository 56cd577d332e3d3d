"""The offline stand-in for ``gpt2``: a small GPT-2 pretrained here on the standard library's docstrings (05, 06).

:func:`build_offline_base` pretrains it once and caches the ``save_pretrained`` folder under a key hashed from
the recipe and the code that builds it; :func:`load_base_lm` loads ``gpt2`` from the hub when it can and this
folder when it cannot, and says which path ran.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from aigc_lib import data, storage, train
from aigc_lib.hub import ModelNotAvailableError, find_source, load_pretrained
from aigc_lib.lm import data as lm_data
from aigc_lib.lm import model as lm_model
from aigc_lib.lm import tokenize as lm_tokenize
from aigc_lib.lm import training as lm_training
from aigc_lib.lm.data import encode_corpus, pack_blocks
from aigc_lib.lm.model import GPT, GPTConfig
from aigc_lib.lm.tokenize import train_bpe_tokenizer
from aigc_lib.lm.training import LMStep, lm_eval_fn, lm_optimizer, warmup_cosine
from aigc_lib.runtime import is_online, steps_scale

__all__ = ["BASE_RECIPES", "BaseRecipe", "build_offline_base", "load_base_lm", "load_causal_lm"]


@dataclass(frozen=True)
class BaseRecipe:
    """How :func:`build_offline_base` pretrains the small GPT-2 that stands in for ``gpt2`` offline."""

    corpus: str = "stdlib-docs"  # the installed Python's docstrings (aigc_lib.data.load_text)
    max_chars: int | None = None
    vocab_size: int = 8192
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 512
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    val_fraction: float = 0.05
    seed: int = 0

    def key(self) -> str:
        """Cache key: the recipe, the Python (whose docstrings are the default corpus) and the code that builds
        the model, so a change to that code can never serve a model built by the old one (notebook 05)."""
        what = {**asdict(self), "python": platform.python_version(), "steps_scale": steps_scale()}  # rehearsals
        return storage.cache_key(what, *_BUILD_CODE)


BASE_RECIPES = {  # measured times: docs/lm.md and notebook 05's intro
    "smoke": BaseRecipe(max_chars=300_000, vocab_size=2048, n_layer=2, n_head=2, n_embd=64, block_size=128,
                        steps=80, batch_size=16, lr=3e-3, warmup_steps=10),
    # quick: 2M tokens, 180 s on a quiet 2-core CPU (the 6.5M-token recipe before it took 19 min on a busy one)
    "quick": BaseRecipe(vocab_size=4096, n_layer=4, n_head=4, n_embd=128, block_size=256, steps=500,
                        batch_size=16, lr=2e-3, warmup_steps=50),
    "full": BaseRecipe(),
}


def build_offline_base(recipe: BaseRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
                       device: str | None = None, force: bool = False, progress: bool = True) -> Path:
    """Pretrain (once, then cached) a small GPT-2 and its BPE tokenizer on an offline corpus; return the folder.

    The folder is a normal ``save_pretrained`` folder: ``AutoModelForCausalLM.from_pretrained(folder)`` and
    ``AutoTokenizer.from_pretrained(folder)`` load it exactly as they load ``"gpt2"`` from the hub.
    """
    if isinstance(recipe, str):
        if recipe not in BASE_RECIPES:
            raise ValueError(f"unknown base recipe {recipe!r}: choose one of {', '.join(BASE_RECIPES)}.")
        recipe = BASE_RECIPES[recipe]
    if not isinstance(recipe, BaseRecipe):
        raise TypeError(f"recipe must be a name ({', '.join(BASE_RECIPES)}) or a BaseRecipe, got {type(recipe)}.")
    root = Path(cache_dir) if cache_dir else data.DATA_DIR / "cache" / "lm"
    folder = root / f"base-{recipe.key()}"
    if (folder / "config.json").is_file() and not force:
        print(f"[aigc.lm] offline base model: cached {folder}")
        return folder
    start = time.perf_counter()
    text = data.load_text(recipe.corpus, max_chars=recipe.max_chars)
    documents = [d for d in text.split("\n\n") if d.strip()]
    tokenizer = train_bpe_tokenizer(documents, recipe.vocab_size)
    blocks = pack_blocks(encode_corpus(tokenizer, documents), recipe.block_size)
    val_idx, train_idx = data.split_indices(len(blocks), (recipe.val_fraction, 1 - recipe.val_fraction),
                                            recipe.seed)
    torch.manual_seed(recipe.seed)
    cfg = GPTConfig(vocab_size=len(tokenizer), block_size=recipe.block_size, n_layer=recipe.n_layer,
                    n_head=recipe.n_head, n_embd=recipe.n_embd)
    model = GPT(cfg)
    optimizer = lm_optimizer(model, recipe.lr, recipe.weight_decay)
    config = train.TrainConfig(max_steps=recipe.steps, max_grad_norm=1.0, device=device, progress=progress,
                               log_every=max(1, recipe.steps // 20), scale_steps=True)
    loader = data.TensorLoader(blocks[train_idx], batch_size=recipe.batch_size, seed=recipe.seed)
    val = blocks[val_idx][:256].split(recipe.batch_size)
    trainer = train.Trainer(model, optimizer, LMStep(), loader, config, eval_fn=lm_eval_fn(val),
                            schedulers={"model": warmup_cosine(optimizer, recipe.warmup_steps, recipe.steps)})
    print(f"[aigc.lm] pretraining the offline base model ({model.num_parameters() / 1e6:.2f}M parameters, "
          f"{len(blocks) * recipe.block_size:,} tokens of {recipe.corpus}) on {trainer.device}")
    history = trainer.fit()
    summary = {"recipe": asdict(recipe), "history": history, "seconds": time.perf_counter() - start,
               "device": str(trainer.device), "parameters": model.num_parameters()}
    with storage.atomic_dir(folder) as tmp:  # a reader sees no folder or a complete one
        model.save_pretrained(tmp, tokenizer)
        (tmp / "pretraining.json").write_text(json.dumps(summary, indent=1))
    print(f"[aigc.lm] offline base model saved to {folder} ({summary['seconds']:.0f} s, "
          f"val loss {history['eval'][-1]['val_loss']:.3f})")
    return folder


def load_causal_lm(hub_id: str | None, local_dir: str | os.PathLike | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from the hub when online (e.g. "gpt2", "distilgpt2"), else from ``local_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = load_pretrained(AutoModelForCausalLM, hub_id, local_dir, **kwargs)
    # the tokenizer comes from exactly where the model came from (hub id, cache or folder)
    tokenizer = AutoTokenizer.from_pretrained(model.name_or_path, local_files_only=not is_online())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_base_lm(hub_id: str | None, recipe: BaseRecipe | str = "quick", *, device: str | None = None,
                 online: bool | None = None, cache_dir: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """The model to fine-tune and its tokenizer: ``hub_id`` (e.g. "gpt2") from the hub or its local cache when
    it can be had, else the offline base that :func:`build_offline_base` pretrains (once) from ``recipe``."""
    if hub_id is not None:
        try:
            find_source(hub_id, online=online)
            return load_causal_lm(hub_id)
        except ModelNotAvailableError as error:
            print(f"[aigc.lm] {hub_id!r} is not available ({str(error).split(':')[0]}); "
                  "using the offline base model instead")
    return load_causal_lm(None, build_offline_base(recipe, cache_dir, device=device))


# the code whose changes change the cached model: this package, the corpus builder and the trainer
_BUILD_CODE = (lm_model, lm_tokenize, lm_data, lm_training, BaseRecipe, build_offline_base, data.load_text,
               data._stdlib_docstrings, data.split_indices, train.Trainer)
