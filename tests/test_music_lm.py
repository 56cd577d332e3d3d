"""The melody GPT of notebook 13: recipes, the cache, the untrained control, sampling and the metrics."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from aigc_lib.audio.music import KEYS, SCALES, NoteTokenizer, music_split
from aigc_lib.audio.music_lm import (
    MUSIC_LM_RECIPES,
    MusicLMRecipe,
    build_music_lm,
    load_music_lm,
    melody_metrics,
    melody_rows,
    sample_melodies,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is far faster on a busy CPU

TINY = MusicLMRecipe(n_train=64, n_test=8, n_layer=1, n_head=2, n_embd=16, steps=6, batch_size=16, lr=1e-2,
                     warmup_steps=1)


@pytest.fixture(scope="module")
def split():
    return music_split(200, 50, seed=0)


def _loss(model, rows: torch.Tensor) -> float:
    targets = rows[:, 1:].masked_fill(rows[:, 1:] == 0, -100)
    with torch.no_grad():
        return float(model(rows[:, :-1], targets=targets))


def test_recipe_table_holds_whole_melodies():
    assert list(MUSIC_LM_RECIPES) == ["smoke", "quick", "full"]
    for recipe in MUSIC_LM_RECIPES.values():
        assert recipe.block_size >= 54 + 2  # the longest 4-bar melody (54 tokens) + room: rows start at BOS
    smoke, quick = MUSIC_LM_RECIPES["smoke"], MUSIC_LM_RECIPES["quick"]
    assert smoke.steps < quick.steps and smoke.n_embd <= quick.n_embd


def test_melody_rows_start_at_bos_and_decode_back(split):
    tokenizer = NoteTokenizer()
    rows = melody_rows(tokenizer, split[0][:20], 64)  # (20, 65)
    assert rows.shape == (20, 65)
    assert (rows[:, 0] == tokenizer.bos_id).all()
    for row, melody in zip(rows, split[0][:20]):
        assert tokenizer.decode(row).notes == melody.notes
        assert tokenizer.tokens[int(row[1])] == f"KEY_{melody.key}"
    with pytest.raises(ValueError, match="block_size"):
        melody_rows(tokenizer, split[0][:20], 16)


def test_build_caches_and_reloads_identical_weights(tmp_path, split, capsys):
    model, _, info = build_music_lm(TINY, tmp_path, progress=False)
    files = list(tmp_path.glob("music-lm-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["steps"] == TINY.steps
    assert info["train_seconds"] > 0 and math.isfinite(info["final_loss"])
    capsys.readouterr()
    again, _ = load_music_lm(TINY, tmp_path, progress=False)
    assert "music LM: cached" in capsys.readouterr().out  # read back, not trained again
    trained = model.state_dict()
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    assert again.lm_head.weight.data_ptr() == again.transformer.wte.weight.data_ptr()  # still tied
    # a different recipe is a different entry
    build_music_lm(dataclasses.replace(TINY, steps=7), tmp_path, progress=False)
    assert len(list(tmp_path.glob("music-lm-*.json"))) == 2


def test_untrained_control_is_at_chance_and_training_moves_off_it(tmp_path, split):
    untrained, tokenizer, info = build_music_lm(TINY, tmp_path, learn=False)
    assert info["learned"] is False and not list(tmp_path.iterdir())  # the control is never cached
    rows = melody_rows(tokenizer, split[1], TINY.block_size)
    assert abs(_loss(untrained, rows) - math.log(tokenizer.vocab_size)) < 0.1  # ln 83 = 4.42: uniform guesses
    trained, _, _ = build_music_lm(dataclasses.replace(TINY, steps=30), tmp_path, progress=False)
    assert _loss(trained, rows) < math.log(tokenizer.vocab_size) - 1.0  # 30 steps already learn the grammar


def test_metrics_of_real_melodies(split):
    train_melodies, test_melodies = split
    metrics = melody_metrics(test_melodies, train_melodies)
    assert metrics["in_key"] == 1.0 and metrics["rhythm_validity"] == 1.0 and metrics["empty"] == 0.0
    assert metrics["pitch_class_distance"] < 0.1  # 0.03 measured for 200 test vs 1000 train melodies


def test_metrics_of_random_tokens_are_at_chance(split):
    tokenizer = NoteTokenizer()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, tokenizer.vocab_size, (200, 64), generator=generator)
    # random continuations of a conditioning prompt: the notes know nothing of the key
    rows = [tokenizer.prompt(KEYS[i % 12], list(SCALES)[i % 3]) + row.tolist() for i, row in enumerate(ids)]
    reports = []
    melodies = []
    for row in rows:
        melody, report = tokenizer.decode_with_report(row)
        fills = tokenizer.bar_fills(row)
        reports.append({**report, "closed_bars": len(fills), "valid_bars": sum(f == 16 for f in fills)})
        melodies.append(melody)
    metrics = melody_metrics(melodies, split[0], reports)
    assert abs(metrics["in_key"] - 7 / 12) < 0.05  # 0.59 measured
    assert metrics["rhythm_validity"] < 0.1 and metrics["pitch_class_distance"] > 0.15  # 0.0 and 0.28 measured


def test_sample_melodies_shapes_and_seed():
    model, tokenizer, _ = build_music_lm(TINY, learn=False)
    pairs = [("C", "major"), ("A", "minor")]
    melodies, reports = sample_melodies(model, tokenizer, pairs, 3, seed=1)
    assert len(melodies) == len(reports) == 6
    assert [m.key for m in melodies] == ["C"] * 3 + ["A"] * 3 and melodies[3].mode == "minor"
    assert all(r["closed_bars"] >= r["valid_bars"] >= 0 for r in reports)
    again, _ = sample_melodies(model, tokenizer, pairs, 3, seed=1)
    assert again == melodies


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown music LM recipe"):
        build_music_lm("tiny")
    for field in ("steps", "n_train", "batch_size", "n_embd"):
        with pytest.raises(ValueError, match=field):
            dataclasses.replace(TINY, **{field: 0})
    model, tokenizer, _ = build_music_lm(TINY, learn=False)
    with pytest.raises(ValueError, match="n >= 1"):
        sample_melodies(model, tokenizer, [("C", "major")], 0)
    with pytest.raises(ValueError, match="unknown key"):
        sample_melodies(model, tokenizer, [("H", "major")], 1)
    with pytest.raises(ValueError, match="at least one melody"):
        melody_metrics([], [])
