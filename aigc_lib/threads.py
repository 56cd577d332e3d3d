"""How many CPU threads PyTorch uses: the cores that are free when a notebook starts, never more.

PyTorch starts one OpenMP thread per core. When another process already keeps a core busy, those threads wait
for each other at every parallel step and a small model can train 5-10 times slower than with one thread
(measured in docs/instructors.md). ``start_run`` (notebook 00) therefore calls :func:`set_cpu_threads`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

THREADS_ENV = "AIGC_THREADS"  # a fixed thread count, e.g. AIGC_THREADS=4; "auto" or unset: count free cores
OMP_ENV = "OMP_NUM_THREADS"  # the OpenMP standard variable; respected when it is set
PROC_STAT = "/proc/stat"  # Linux: CPU time per CPU since boot


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen (printed by ``start_run``)."""

    threads: int
    cores: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}: {self.reason}"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the CPUs this process may use, from /proc/stat; None where it does not exist."""
    mine = {f"cpu{i}" for i in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else None
    busy = total = 0
    try:
        with open(PROC_STAT, encoding="ascii") as f:
            for line in f:
                name, *values = line.split()
                if not name.startswith("cpu") or name == "cpu" or (mine is not None and name not in mine):
                    continue
                fields = [int(x) for x in values[:8]]  # user nice system idle iowait irq softirq steal
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
                busy, total = busy + sum(fields) - idle, total + sum(fields)
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


def busy_fraction(sample_s: float = 0.3) -> float | None:
    """Share of time this process's CPUs were busy over the next ``sample_s`` seconds (Linux), else the 1-min load."""
    before = _cpu_times()
    if before is not None:
        time.sleep(sample_s)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            return (after[0] - before[0]) / (after[1] - before[1])
    if hasattr(os, "getloadavg"):  # macOS: no /proc; the 1-minute load average lags but is better than nothing
        return min(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    return None


def choose_threads(cores: int | None = None, busy: float | None = None) -> ThreadChoice:
    """``$AIGC_THREADS`` > ``$OMP_NUM_THREADS`` > the free cores now: ``max(1, round(cores * (1 - busy)))``."""
    cores = cores or available_cores()
    for name in (THREADS_ENV, OMP_ENV):
        raw = os.environ.get(name, "").strip()
        if raw and raw.lower() != "auto":
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"${name}={raw!r}: give a whole number of threads >= 1 (e.g. 2), or unset it.")
            return ThreadChoice(int(raw), cores, f"from ${name}")
    if busy is None:
        busy = busy_fraction()
    if busy is None:
        return ThreadChoice(cores, cores, f"{cores} cores; load unknown on this system")
    free = cores * (1.0 - busy)
    threads = max(1, min(cores, int(free + 0.5)))
    return ThreadChoice(threads, cores, f"{free:.1f} of {cores} cores free")


def set_cpu_threads(choice: ThreadChoice | None = None) -> ThreadChoice:
    """Make PyTorch use ``choice`` (default :func:`choose_threads`) intra-op threads; returns it (notebook 00)."""
    choice = choice or choose_threads()
    torch.set_num_threads(choice.threads)
    return choice
