"""The machine's speed in one measured figure, printed beside every time a notebook reports (``start_run``)."""
from __future__ import annotations

import time

import torch

__all__ = ["matmul_gflops"]


def matmul_gflops(device: torch.device | str = "cpu", n: int | None = None, repeats: int = 8) -> float:
    """Measured fp32 matrix-multiply speed of ``device`` in GFLOP/s (median of ``repeats``; about 0.2 s).

    One reference figure that puts every time a notebook prints in context: the quiet 2-core machine the course's
    CPU times were taken on measures about 180-200 here, a busy machine measures less than it can do.
    """
    device = torch.device(device)
    n = n or (4096 if device.type == "cuda" else 512)
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    times = []
    for i in range(repeats + 2):  # two warm-up runs
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9  # an n x n x n matmul is 2 n^3 flops
