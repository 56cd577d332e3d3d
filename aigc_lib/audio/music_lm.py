"""A tiny GPT that writes melodies (notebook 13): trained once on the course's melodies, then cached.

Each training row is one whole melody, ``BOS KEY_x MODE_y BAR ... EOS``, padded to the block size: every note
the model learns to predict sees the key and mode at the start of its row (random windows of a packed stream
would cut them off). :func:`build_music_lm` trains :class:`aigc_lib.lm.GPT` with the course trainer and caches
the weights (safetensors) and a JSON of the recipe, training time and loss under a key hashed from the recipe
and the code; :func:`sample_melodies` continues ``prompt(key, mode)`` and :func:`melody_metrics` grades the
result against reference melodies (in-key rate, rhythm validity, pitch-class distance).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aigc_lib import data, storage, train
from aigc_lib.audio import music
from aigc_lib.audio.music import (
    STEPS_PER_BAR,
    Melody,
    NoteTokenizer,
    in_key_rate,
    music_split,
    pitch_class_distance,
    rhythm_validity,
)
from aigc_lib.lm import model as lm_model
from aigc_lib.lm.decoding import generate
from aigc_lib.lm.model import GPT, IGNORE_INDEX, GPTConfig
from aigc_lib.lm.training import lm_optimizer, warmup_cosine
from aigc_lib.runtime import steps_scale

TIED = "lm_head.weight"  # the output head is the token embedding (weight tying): saved once, as wte

__all__ = ["MUSIC_LM_RECIPES", "MusicLMRecipe", "build_music_lm", "load_music_lm", "melody_metrics",
           "melody_rows", "sample_melodies"]


@dataclass(frozen=True)
class MusicLMRecipe:
    """How :func:`build_music_lm` trains the melody GPT: data, model size and optimisation (notebook 13)."""

    n_train: int = 1000  # training melodies (music_split(n_train, n_test, seed))
    n_test: int = 200  # held-out melodies, disjoint from the training ones
    data_seed: int = 0
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64  # >= the longest melody (54 tokens for 4 bars): one whole melody per row
    steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "n_layer", "n_head", "n_embd", "block_size", "steps", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"MusicLMRecipe.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not self.lr > 0 or not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"need lr > 0 and 0 <= warmup_steps < steps, got lr={self.lr}, "
                             f"warmup_steps={self.warmup_steps}, steps={self.steps}.")


# Notebook 13's profiles. Measured on a shared 2-core CPU, one torch thread, 72 melodies sampled from the 24 (key,
# major/minor) prompts at temperature 0.8, top-p 0.9, graded against the training melodies:
# smoke: 10-16 s, in-key 0.74, rhythm validity (tokens) 0.75, pitch-class distance 0.19 (untrained 0.60, 0.00, 0.28);
# quick: 77-112 s, in-key 1.00, rhythm validity 0.97, distance 0.04 (untrained 0.52, 0.00, 0.33; test data 0.02).
# (300 smoke steps: 11 s, in-key 0.59 = chance. 1000 melodies, 64 dims, 1200 steps: 52 s, 0.99, 0.91, 0.11.)
MUSIC_LM_RECIPES = {
    "smoke": MusicLMRecipe(n_test=48, n_head=2, n_embd=48, steps=450, lr=5e-3, warmup_steps=25),
    "quick": MusicLMRecipe(n_train=4000, n_embd=96, steps=1500),
    "full": MusicLMRecipe(n_train=8000, n_layer=4, n_embd=128, steps=4000, batch_size=64, lr=2e-3,
                          warmup_steps=200),
}


def _recipe(recipe: MusicLMRecipe | str) -> MusicLMRecipe:
    return storage.named_recipe(recipe, MUSIC_LM_RECIPES, MusicLMRecipe, "music LM", "MUSIC_LM_RECIPES")


def melody_rows(tokenizer: NoteTokenizer, melodies: Sequence[Melody], block_size: int) -> Tensor:
    """(N, block_size + 1) ids, one whole melody per row from its BOS, padded with PAD (notebook 13)."""
    rows = torch.full((len(melodies), block_size + 1), tokenizer.pad_id, dtype=torch.long)
    for i, melody in enumerate(melodies):
        ids = tokenizer.encode(melody)
        if len(ids) > block_size + 1:
            raise ValueError(f"a melody of {len(ids)} tokens does not fit block_size {block_size}: raise "
                             "MusicLMRecipe.block_size (4-bar melodies take up to 54 tokens).")
        rows[i, : len(ids)] = torch.tensor(ids)
    return rows


@dataclass
class MelodyStep:
    """One training step on padded melody rows: next-token cross-entropy, padding left out (notebook 13)."""

    pad_id: int = 0

    def __call__(self, trainer: Any, rows: Tensor) -> dict[str, Tensor]:
        inputs, targets = rows[:, :-1], rows[:, 1:]  # (B, T), (B, T): the shift is done on the data
        targets = targets.masked_fill(targets == self.pad_id, IGNORE_INDEX)  # no loss after EOS
        loss = trainer.model(inputs, targets=targets)
        trainer.backward(loss)
        trainer.optimizer_step()
        return {"loss": loss.detach()}


def _config(recipe: MusicLMRecipe, tokenizer: NoteTokenizer) -> GPTConfig:
    return GPTConfig(vocab_size=tokenizer.vocab_size, block_size=recipe.block_size, n_layer=recipe.n_layer,
                     n_head=recipe.n_head, n_embd=recipe.n_embd)


def _untrained(recipe: MusicLMRecipe, tokenizer: NoteTokenizer) -> GPT:
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's random state is left alone
        torch.manual_seed(recipe.seed)
        return GPT(_config(recipe, tokenizer))


def build_music_lm(recipe: MusicLMRecipe | str = "quick", cache_dir: str | os.PathLike | None = None, *,
                   learn: bool = True, device: str | None = None, rebuild: bool = False,
                   progress: bool = True) -> tuple[GPT, NoteTokenizer, dict[str, Any]]:
    """(model, tokenizer, info) of the melody GPT, trained once and cached (notebook 13); ``learn=False`` gives
    the untrained model of the same recipe (the control run; never cached). The model is in eval mode."""
    recipe = _recipe(recipe)
    tokenizer = NoteTokenizer()
    if not learn:
        return _untrained(recipe, tokenizer).eval(), tokenizer, {"recipe": asdict(recipe), "learned": False}
    key = storage.cache_key({**asdict(recipe), "steps_scale": steps_scale()}, *_BUILD_CODE)
    path = (Path(cache_dir) if cache_dir else data.DATA_DIR / "cache" / "music_lm") / f"music-lm-{key}"

    def from_cache(meta: dict, weights: dict) -> GPT:
        model = GPT(GPTConfig(**meta["config"]))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) != {TIED}:
            raise ValueError(f"cached weights do not match the GPT: missing {missing}, unexpected {unexpected}")
        return model

    if not rebuild and (entry := storage.load_model_entry(path, key, from_cache, "music LM", "aigc.audio")):
        print(f"[aigc.audio] music LM: cached {path}")
        model, info = entry
        return model.eval(), NoteTokenizer(info["tokenizer"]["low"], info["tokenizer"]["high"]), info
    start = time.perf_counter()
    train_melodies, _ = music_split(recipe.n_train, recipe.n_test, recipe.data_seed)
    rows = melody_rows(tokenizer, train_melodies, recipe.block_size)  # (N, block_size + 1)
    model = _untrained(recipe, tokenizer)
    optimizer = lm_optimizer(model, recipe.lr, recipe.weight_decay)
    config = train.TrainConfig(max_steps=recipe.steps, max_grad_norm=1.0, device=device, progress=progress,
                               log_every=max(1, recipe.steps // 20), scale_steps=True)
    loader = data.TensorLoader(rows, batch_size=min(recipe.batch_size, len(rows)), seed=recipe.seed)
    trainer = train.Trainer(model, optimizer, MelodyStep(tokenizer.pad_id), loader, config,
                            schedulers={"model": warmup_cosine(optimizer, recipe.warmup_steps, recipe.steps)})
    history = trainer.fit()
    losses = [entry["loss"] for entry in history.get("train", []) if "loss" in entry]
    info = {"key": key, "recipe": asdict(recipe), "config": asdict(model.config),
            "tokenizer": {"low": tokenizer.low, "high": tokenizer.high}, "learned": True,
            "train_seconds": round(time.perf_counter() - start, 2), "steps": trainer.step,
            "final_loss": losses[-1] if losses else None, "history": history,
            "parameters": model.num_parameters(), "device": str(trainer.device)}
    weights = {k: v for k, v in model.state_dict().items() if k != TIED}  # safetensors stores no shared tensors
    storage.save_model_entry(path, weights, info)
    print(f"[aigc.audio] music LM saved to {path} ({info['train_seconds']:.0f} s, {trainer.step} steps, "
          f"loss {info['final_loss']})")
    return model.cpu().eval(), tokenizer, info


def load_music_lm(recipe: MusicLMRecipe | str = "quick", cache_dir: str | os.PathLike | None = None,
                  **build: Any) -> tuple[GPT, NoteTokenizer]:
    """(model, tokenizer) of a recipe's melody GPT, trained first if it is not cached (notebook 13)."""
    model, tokenizer, _ = build_music_lm(recipe, cache_dir, **build)
    return model, tokenizer


def sample_melodies(model: GPT, tokenizer: NoteTokenizer, keys_modes: Sequence[tuple[str, str]], n: int = 1, *,
                    temperature: float = 0.8, top_p: float = 0.9, max_new_tokens: int | None = None,
                    seed: int = 0) -> tuple[list[Melody], list[dict[str, int]]]:
    """``n`` melodies per (key, mode) sampled from ``prompt(key, mode)``, decoded, with their decode reports
    (notebook 13). The course's melodies are major or minor (``music_dataset`` draws no dorian one): a dorian
    prompt asks for a condition the model never saw. Up to ``block_size - 3`` new tokens (one melody's context);
    decoding stops at EOS. Each report adds ``closed_bars`` and ``valid_bars``: the bars of the tokens and those
    filling exactly 16 steps."""
    if n < 1 or not keys_modes:
        raise ValueError(f"need n >= 1 and at least one (key, mode) pair, got n={n} and {len(keys_modes)} pairs.")
    prompts = torch.tensor([tokenizer.prompt(k, m) for k, m in keys_modes])  # (P, 3)
    new = max_new_tokens or model.config.block_size - prompts.size(1)
    ids = generate(model, prompts, new, do_sample=True, temperature=temperature, top_p=top_p,
                   num_return_sequences=n, eos_token_id=tokenizer.eos_id, seed=seed)  # (P * n, 3 + new)
    melodies, reports = [], []
    for row in ids:
        melody, report = tokenizer.decode_with_report(row)
        fills = tokenizer.bar_fills(row)
        report.update(closed_bars=len(fills), valid_bars=sum(f == STEPS_PER_BAR for f in fills))
        melodies.append(melody)
        reports.append(report)
    return melodies, reports


def melody_metrics(melodies: Sequence[Melody], reference: Sequence[Melody],
                   reports: Sequence[dict[str, int]] | None = None) -> dict[str, float]:
    """In-key rate, rhythm validity and pitch-class distance to ``reference`` of melodies (notebook 13).

    Rhythm validity comes from the tokens when the ``reports`` of :func:`sample_melodies` are given (valid bars
    over closed bars; 0 when none closes, as for :func:`rhythm_validity` on ids), else from the decoded notes.
    In-key rate and distance pool the melodies that have notes (``nan`` when none has); ``empty`` is the share
    of melodies without a note."""
    melodies = list(melodies)
    if not melodies or not reference:
        raise ValueError("melody_metrics needs at least one melody and one reference melody.")
    if reports is not None and len(reports) != len(melodies):
        raise ValueError(f"got {len(reports)} reports for {len(melodies)} melodies: pass sample_melodies' pair.")
    voiced = [m for m in melodies if m.notes]
    if reports is None:
        rhythm = rhythm_validity(melodies)
    else:
        closed = sum(r["closed_bars"] for r in reports)
        rhythm = sum(r["valid_bars"] for r in reports) / closed if closed else 0.0
    return {"in_key": in_key_rate(voiced) if voiced else float("nan"), "rhythm_validity": rhythm,
            "pitch_class_distance": pitch_class_distance(voiced, list(reference)) if voiced else float("nan"),
            "empty": 1 - len(voiced) / len(melodies),
            "notes_per_melody": sum(len(m.notes) for m in melodies) / len(melodies)}


# the code whose changes change the cached model: the data, the tokenizer, the GPT, the loss and the trainer
_BUILD_CODE = (music, lm_model, MusicLMRecipe, melody_rows, MelodyStep, _config, _untrained, build_music_lm,
               train.Trainer, lm_optimizer, warmup_cosine)
