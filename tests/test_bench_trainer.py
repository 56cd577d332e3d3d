"""bench/trainer.py runs on a CPU at smoke size and writes a side-by-side table against the plain loop."""
from __future__ import annotations

import json
import math

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
    assert (tmp_path / "trainer_cpu.md").read_text().count("| trainer fp32 |") == 1
