"""bench/trainer.py runs on a CPU at smoke size and writes a side-by-side table against the plain loop."""
from __future__ import annotations

import json
import math

import pytest

from bench.trainer import main


def test_trainer_benchmark_smoke(tmp_path):
    assert main(["--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "trainer_cpu.json").read_text())
    rows = {row["name"]: row for row in payload["rows"]}
    assert set(rows) == {"plain loop (DataLoader, fp32)", "trainer fp32"}
    assert rows["plain loop (DataLoader, fp32)"]["vs baseline"] == 1.0
    for row in rows.values():
        assert row["images/s"] > 0 and math.isfinite(row["eval_loss_after"])
    # same model, data, seed and steps: both variants must have learned about as much
    plain, ours = rows["plain loop (DataLoader, fp32)"], rows["trainer fp32"]
    assert abs(plain["eval_loss_after"] - ours["eval_loss_after"]) < 0.5 * plain["eval_loss_after"]
    # ... and moved the shared initial weights alike. Measured on a busy 2-core CPU, smoke (13 fp32 steps): both
    # moved 13.4-13.6% of the weights' norm, update norm ratio 1.01, cosine 0.54 between the two updates (the
    # batches differ: DataLoader vs TensorLoader order). A loop that never steps scores 0 on all three.
    assert plain["weights_moved"] > 0.05 and plain["update_cosine"] == pytest.approx(1.0), plain
    assert ours["update_cosine"] > 0.25 and 0.5 < ours["update_norm_ratio"] < 2.0, ours
    assert (tmp_path / "trainer_cpu.md").read_text().count("| trainer fp32 |") == 1
