"""Data parallelism: two CPU processes (gloo) through the trainer equal one process with the combined batch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.multiprocess
def test_two_gloo_processes_match_one_process_with_the_combined_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, str(SCRIPT), "32", str(single)], check=True, env=env, timeout=300)
    two_procs = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                "2", str(SCRIPT), "16", str(double)], env=env, timeout=300, capture_output=True,
                               text=True)
    assert two_procs.returncode == 0, f"torchrun failed:\n{two_procs.stdout[-3000:]}\n{two_procs.stderr[-3000:]}"
    one, two = torch.load(single, weights_only=True), torch.load(double, weights_only=True)
    assert one["processes"] == 1 and two["processes"] == 2
    for key, value in one["weights"].items():
        # gradients are averaged over processes instead of over one batch: equal up to float rounding
        torch.testing.assert_close(two["weights"][key], value, rtol=1e-5, atol=1e-6)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
