"""bench/lm.py runs on a CPU at smoke size: HF Trainer (defaults, tuned), the nanoGPT-style loop and our trainer."""
from __future__ import annotations

import json
import math

import pytest

from aigc_lib.lm import GPTConfig
from bench.lm import VARIANTS, flops_per_token, main


def test_lm_benchmark_smoke(tmp_path):
    assert main(["--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "lm_cpu.json").read_text())
    rows = {row["name"]: row for row in payload["rows"]}
    assert set(rows) == set(VARIANTS.values())
    vocab = payload["config"]["vocab_size"]
    for row in rows.values():
        assert row["tokens/s"] > 0 and row["step_ms"] > 0
        # MFU against the measured matmul peak is a timing: when another job slows the peak measurement more than
        # the timed steps (a fresh-clone CI run of 2026-12-07 beside other work measured 1.68), it exceeds 1. Only its
        # sign and finiteness are checked here (bench/README.md explains how it is computed).
        assert 0 < row["mfu_h100"] < 1 and 0 < row["mfu_measured"] and math.isfinite(row["mfu_measured"])
        assert math.isfinite(row["loss_after"])
    assert rows[VARIANTS["hf-defaults"]]["vs HF defaults"] == 1.0
    assert rows[VARIANTS["plain"]]["vs plain loop"] == 1.0
    # Uniform random tokens and a few small steps from a random init: every variant sits just above the floor
    # ln V (8.294 for V = 4000). Measured on 2 CPU cores over 3 runs (3 and 6 timed steps): 8.299-8.317, i.e.
    # 0.005-0.023 above ln V; 0.05 leaves 2x margin and still catches a variant that diverged.
    losses = [row["loss_after"] for row in rows.values()]
    assert all(abs(loss - math.log(vocab)) < 0.05 for loss in losses), losses
    # A loop that never steps also sits at ln V, so the weights are checked: measured on a busy 2-core CPU, smoke
    # (4 steps, bf16 autocast): HF moved 0.27% of its weights' norm (lr 5e-5), the plain loop 4.7%, ours 4.4%;
    # from the same init, ours vs the plain loop: update norm ratio 0.95, cosine 0.59 (the batches differ; a
    # random direction scores ~1/sqrt(362,240 parameters) = 0.002). A loop that never steps scores 0.
    assert all(row["weights_moved"] > 0.001 for row in rows.values()), rows
    plain, ours = rows[VARIANTS["plain"]], rows[VARIANTS["trainer"]]
    assert plain["weights_moved"] > 0.015 and plain["update_cosine"] == pytest.approx(1.0), plain
    assert ours["update_cosine"] > 0.25 and 0.5 < ours["update_norm_ratio"] < 2.0, ours
    markdown = (tmp_path / "lm_cpu.md").read_text()
    for name in VARIANTS.values():
        assert markdown.count(f"| {name} |") == 1
    assert "## Targets" in markdown and "6N + 12 L C T" in markdown


def test_flops_per_token_matches_a_hand_count():
    L, C, T, V = 2, 64, 32, 100
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=2, n_embd=C, vocab_multiple=64)
    # per block: ln_1 and ln_2 (2C each), qkv (3C^2 + 3C), attention out (C^2 + C), MLP up (4C^2 + 4C), down (4C^2 + C)
    per_block = 12 * C**2 + 13 * C
    n = L * per_block + 2 * C + C * V  # + final LayerNorm + the tied head (real vocabulary, not the padded 128)
    assert n == 106_496
    assert flops_per_token(cfg, T) == 6 * n + 12 * L * C * T == 688_128


def test_gpt2_small_flops_match_nanogpt_count():
    # GPT-2 124M: 85.06M non-embedding + 38.6M head = 123.65M; 6N + 12 L C T at T = 1024: 855 MFLOP per token,
    # so 500k tokens/s is 428 TFLOP/s = 43% of an H100's 989 (the issue's two targets agree)
    per_token = flops_per_token(GPTConfig.from_name("gpt2", vocab_multiple=64), 1024)
    assert per_token == 6 * (85_056_000 + 768 * 50257) + 12 * 12 * 768 * 1024
    assert 0.43 < 500_000 * per_token / 989e12 < 0.44


def test_unknown_variant_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--smoke", "--variants", "plain", "deepspeed"])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'deepspeed'" in err and "hf-defaults" in err


def test_generation_benchmark_smoke(tmp_path):
    assert main(["--generate", "--smoke", "--device", "cpu", "--batch", "2", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "lm-generate_cpu.json").read_text())
    rows = payload["rows"]
    assert [row["new_tokens"] for row in rows] == [16, 96] and all(row["batch"] == 2 for row in rows)
    for row in rows:
        assert row["same_tokens"] is True, row  # the cache changes the speed, never the tokens
        assert row["cached tokens/s"] > 0 and row["uncached tokens/s"] > 0
    # no speed assertion: timings on a shared CI machine are noise (measured on a heavily loaded 2-core CPU,
    # smoke: 96 new tokens ran 5.1x faster with the cache, 19 -> 95 tokens/s)
    markdown = (tmp_path / "lm-generate_cpu.md").read_text()
    assert "| greedy, 96 new tokens |" in markdown and "## Notes" in markdown


def test_generation_benchmark_refuses_lengths_past_the_window(tmp_path):
    with pytest.raises(ValueError, match="exceed block_size"):
        main(["--generate", "--smoke", "--device", "cpu", "--lengths", "200", "--out", str(tmp_path)])
