"""bench/gan.py runs on a CPU at smoke size: the pytorch/examples DCGAN loop and the trainer side by side."""
from __future__ import annotations

import json
import math

from bench.gan import BASELINE, main


def test_gan_benchmark_smoke(tmp_path):
    assert main(["--smoke", "--device", "cpu", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "gan_cpu.json").read_text())
    rows = {row["name"]: row for row in payload["rows"]}
    assert set(rows) == {BASELINE, "trainer fp32"}
    assert rows[BASELINE]["vs baseline"] == 1.0
    assert payload["config"]["fd_real_vs_real"] > 0
    for row in rows.values():
        assert row["images/s"] > 0 and math.isfinite(row["fd_digits"]) and row["fd_digits"] > 0
    # same model, seed and number of steps: the two loops must land at about the same FD-digits
    plain, ours = rows[BASELINE]["fd_digits"], rows["trainer fp32"]["fd_digits"]
    assert abs(plain - ours) < 0.25 * plain, (plain, ours)
    # 6 steps barely move FD, so the weights are compared too: from the same init, G and D moved 1.43% (loop) and
    # 1.44% (trainer) of their norm, update norm ratio 1.002, cosine 0.42 between the two updates (the batches and
    # noise differ; a random direction scores ~1/sqrt(72,657 parameters) = 0.004). Measured on a busy 2-core CPU,
    # smoke, fp32. A loop that never steps scores 0 on all three.
    assert rows[BASELINE]["weights_moved"] > 0.005, rows[BASELINE]
    ours = rows["trainer fp32"]
    assert ours["update_cosine"] > 0.2 and 0.5 < ours["update_norm_ratio"] < 2.0, ours
    assert (tmp_path / "gan_cpu.md").read_text().count("| trainer fp32 |") == 1
