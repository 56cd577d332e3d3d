"""Shared benchmark harness: device report, timing, peak memory, result files (see bench/README.md).

Benchmarks (``bench/trainer.py`` now; the tracks add ``gan``, ``lm`` and ``diffusion``) run from the repository
root as ``python -m bench.<name>`` and import from here; ``python -m bench.harness --smoke`` is a quick self-demo.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Row = dict[str, Any]


# --------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """Wall-clock time of a ``with`` block; the device is synchronised on entry and exit."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        _sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass(frozen=True)
class Timing:
    """Seconds per call after warm-up, plus the first call (where torch.compile compiles) kept apart."""

    samples_s: tuple[float, ...]
    first_call_s: float | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    def as_row(self) -> Row:
        """The timing as result-table columns (milliseconds per call, first call in seconds)."""
        row = {"median_ms": self.median_s * 1e3, "min_ms": self.min_s * 1e3}
        return row | {"first_call_s": self.first_call_s}


def time_fn(
    fn: Callable[[], object], *, device: torch.device | str, warmup: int = 2, repeats: int = 10
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed (the first one timed apart), then time ``repeats`` calls."""
    device = torch.device(device)
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    first = Timer(device)
    if warmup:
        with first:
            fn()  # torch.compile compiles here (and allocators warm up): reported apart as first_call_s
    for _ in range(warmup - 1):
        fn()
    _sync(device)
    if device.type == "cuda":
        # CUDA events mark positions in the stream: GPU time, no host sync between calls.
        with torch.cuda.device(device):
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for start, end in zip(starts, ends):
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize(device)
        samples = [start.elapsed_time(end) / 1e3 for start, end in zip(starts, ends)]  # ms -> s
    else:
        samples = []
        for _ in range(repeats):
            with Timer(device) as t:
                fn()
            samples.append(t.seconds)
    return Timing(tuple(samples), first.seconds if warmup else None)


# --------------------------------------------------------------------------------------------- memory
@dataclass
class MemoryPeak:
    """Peak memory of a ``peak_memory`` block; ``key`` names what was measured (GPU or host RSS)."""

    key: str
    gib: float = float("nan")


def _host_peak_rss_gib() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


@contextmanager
def peak_memory(device: torch.device | str) -> Iterator[MemoryPeak]:
    """CUDA: peak allocated GiB in the block. Elsewhere: the process's host peak RSS (never goes down)."""
    device = torch.device(device)
    if device.type != "cuda":
        peak = MemoryPeak("host_peak_rss_gib")
        yield peak
        peak.gib = _host_peak_rss_gib()
        return
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)  # the peak restarts from what is allocated now (weights count)
    peak = MemoryPeak("peak_gpu_mem_gib")
    yield peak
    torch.cuda.synchronize(device)
    peak.gib = torch.cuda.max_memory_allocated(device) / 2**30


def measure(
    fn: Callable[[], object], *, device: torch.device | str, warmup: int = 2, repeats: int = 10,
    items: int | None = None, unit: str = "items",
) -> Row:
    """Time ``fn`` and its peak memory as one result row; ``items`` per call adds a ``<unit>/s`` column."""
    with peak_memory(device) as peak:
        timing = time_fn(fn, device=device, warmup=warmup, repeats=repeats)
    row = timing.as_row()
    if items:
        row[f"{unit}/s"] = items / timing.median_s
    row[peak.key] = peak.gib
    return row


def measure_training(run: Callable[[int], object], *, device: torch.device | str, warmup: int, steps: int,
                     items_per_step: int, unit: str = "images") -> Row:
    """End-to-end training throughput: ``run(n)`` trains n more steps. The first ``warmup`` steps are timed apart
    (compilation, autotuning); the next ``steps`` give ``<unit>/s`` and the peak memory."""
    with Timer(device) as first:
        run(warmup)
    with peak_memory(device) as peak, Timer(device) as timed:
        run(steps)
    return {"first_call_s": first.seconds, f"{unit}/s": steps * items_per_step / timed.seconds, peak.key: peak.gib}


# --------------------------------------------------------------------------------------------- device
def free_memory(device: torch.device) -> None:
    """Forget compiled graphs (and CUDA graph pools) and Accelerate's process-wide state and release memory, so
    the next variant of a benchmark starts from the same state."""
    from accelerate.state import AcceleratorState

    torch._dynamo.reset()
    AcceleratorState._reset_state(reset_partial_state=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def default_device() -> torch.device:
    """The first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _run(cmd: list[str]) -> str:
    """stdout of a short command, or ``n/a`` when it is missing or fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    return out or "n/a"


def _driver_version() -> str:
    if shutil.which("nvidia-smi") is None:
        return "n/a"
    return _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]).split("\n")[0]


def _half_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":  # bf16 tensor cores from Ampere (compute capability 8.x) on; T4 / V100: fp16
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    return torch.float16 if device.type == "mps" else torch.bfloat16


def _matmul_tflops(device: torch.device) -> Row:
    dtype, n = (_half_dtype(device), 8192) if device.type == "cuda" else (torch.float32, 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    c = torch.empty_like(a)
    timing = time_fn(lambda: torch.mm(a, b, out=c), device=device, warmup=3, repeats=10)
    tflops = 2 * n**3 / timing.median_s / 1e12  # an n x n x n matmul is 2 n^3 flops
    return {"matmul_dtype": str(dtype).removeprefix("torch."), "matmul_size": n, "matmul_tflops": tflops}


def _copy_gbps(device: torch.device) -> Row:
    nbytes = (256 if device.type == "cuda" else 64) * 2**20
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)  # not empty(): untouched pages read for free
    dst = torch.empty_like(src)
    timing = time_fn(lambda: dst.copy_(src), device=device, warmup=2, repeats=10)
    # device-to-device counts bytes read + written (as nvidia's bandwidthTest does): compare with HBM spec
    row: Row = {"h2d_gbps": None, "d2h_gbps": None, "d2d_gbps": 2 * nbytes / timing.median_s / 1e9}
    if device.type == "cuda":
        host = torch.ones(nbytes, dtype=torch.uint8).pin_memory()  # pinned: async, full-speed DMA
        h2d = time_fn(lambda: src.copy_(host, non_blocking=True), device=device, warmup=2, repeats=5)
        d2h = time_fn(lambda: host.copy_(src, non_blocking=True), device=device, warmup=2, repeats=5)
        row.update(h2d_gbps=nbytes / h2d.median_s / 1e9, d2h_gbps=nbytes / d2h.median_s / 1e9)
    return row


def device_report(device: torch.device | str) -> Row:
    """Versions and hardware of ``device`` plus a measured matmul TFLOP/s and copy GB/s (about a second)."""
    device = torch.device(device)
    is_cuda = device.type == "cuda"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    report: Row = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if is_cuda else _cpu_name(),
        "driver": _driver_version() if is_cuda else "n/a",
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "n/a",
        "cudnn": str(cudnn) if cudnn else "n/a",
        "python": platform.python_version(),
        "cpu_name": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if is_cuda:
        props = torch.cuda.get_device_properties(device)
        report["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        report["compute_capability"] = f"{props.major}.{props.minor}"
    return report | _matmul_tflops(device) | _copy_gbps(device)


# --------------------------------------------------------------------------------------------- quality
def weight_vector(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Parameters (not buffers: BatchNorm statistics move without a step) as one fp32 CPU vector."""
    return torch.cat([t.detach().float().flatten().cpu() for t in tensors])


def update_agreement(init: torch.Tensor, baseline: torch.Tensor, ours: torch.Tensor) -> Row:
    """How far and which way ``ours`` moved the weights from the shared ``init``, next to the baseline loop after
    the same steps on the same data: ``weights_moved`` = |ours - init| / |init|, ``update_cosine`` between the
    two updates (1: the same direction) and ``update_norm_ratio`` = |ours - init| / |baseline - init|. A loop
    that never steps scores 0 on all three."""
    d_base, d_ours = (baseline - init).double(), (ours - init).double()  # (P,) the two updates
    n_base, n_ours = d_base.norm().item(), d_ours.norm().item()
    cosine = (d_base @ d_ours).item() / (n_base * n_ours) if n_base and n_ours else 0.0
    return {"weights_moved": n_ours / init.norm().item(), "update_cosine": cosine,
            "update_norm_ratio": n_ours / n_base if n_base else float("inf")}


# --------------------------------------------------------------------------------------------- results
def speedup(
    rows: Sequence[Row], baseline: str, *, key: str = "median_ms", name_key: str = "name",
    higher_is_better: bool = False, column: str = "vs baseline",
) -> list[Row]:
    """Copies of ``rows`` with ``column`` = how many times better than the ``baseline`` row (> 1: better)."""
    matches = [row for row in rows if row.get(name_key) == baseline]
    if len(matches) != 1:
        names = [row.get(name_key) for row in rows]
        raise ValueError(f"need one row with {name_key}={baseline!r}, found {len(matches)} among {names}")
    ref = matches[0][key]

    def ratio(value: float | None) -> float | None:
        if not (value and ref):
            return None
        return value / ref if higher_is_better else ref / value

    return [{**row, column: ratio(row.get(key))} for row in rows]


def format_value(value: Any) -> str:
    """A result value as table text: 3 significant figures for small floats, ``n/a`` for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "\\|")
    if isinstance(value, int) or value == 0:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if magnitude >= 10 else f"{value:.2f}" if magnitude >= 1 else f"{value:.3g}"


def markdown_table(rows: Sequence[Row]) -> str:
    """A Markdown table with one column per key seen in ``rows`` (first-seen order); numbers right-aligned."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    numeric = {c: all(isinstance(r.get(c), (int, float, type(None))) for r in rows) for c in columns}
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if numeric[c] else "---" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(format_value(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def device_slug(device_info: Row) -> str:
    """The device part of result file names: ``nvidia-h100-80gb-hbm3`` on a GPU, else ``cpu`` / ``mps``."""
    device = str(device_info.get("device", "cpu"))
    name = str(device_info.get("device_name", device)) if device.startswith("cuda") else device.split(":")[0]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def write_results(
    name: str, rows: Sequence[Row], device_info: Row, config: Row, out_dir: str | os.PathLike = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write ``<name>_<device>.json`` (device, config, rows, time, commit) and a matching ``.md`` table."""
    if not rows:
        raise ValueError(f"write_results({name!r}) got no rows to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    commit = _run(["git", "-C", str(RESULTS_DIR.parent), "describe", "--always", "--dirty", "--abbrev=12"])
    payload = {"name": name, "timestamp": now, "git_commit": commit, "device": device_info,
               "config": config, "rows": list(rows)}
    stem = out / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}_{device_slug(device_info)}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    info = {k: format_value(v) for k, v in device_info.items()}
    get = lambda k: info.get(k, "?")  # noqa: E731
    lines = [
        f"# {name}",
        "",
        f"**{get('device_name')}** ({get('device')}), driver {get('driver')}, torch {get('torch')}, "
        f"CUDA {get('cuda')}, {now[:16].replace('T', ' ')} UTC, commit {commit}",
        "",
        f"Measured: matmul {get('matmul_dtype')} {get('matmul_tflops')} TFLOP/s; copy GB/s "
        f"h2d {get('h2d_gbps')}, d2h {get('d2h_gbps')}, d2d {get('d2d_gbps')}.",
        "",
        "Config: " + (", ".join(f"`{k}={v}`" for k, v in config.items()) or "none"),
        "",
        markdown_table(rows),
    ]
    if not str(device_info.get("device", "")).startswith("cuda"):
        lines += ["", "> Not a GPU run: small sizes that check the code path; not a speed result."]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


# --------------------------------------------------------------------------------------------- self-demo
def _mlp_step(
    device: torch.device, width: int, batch: int, dtype: torch.dtype | None, compile: bool
) -> Callable[[], None]:
    """One forward + backward of a 4-layer MLP, optionally under autocast or torch.compile."""
    torch.manual_seed(0)
    layers = [m for _ in range(4) for m in (torch.nn.Linear(width, width), torch.nn.GELU())]
    model = torch.nn.Sequential(*layers).to(device)
    forward = torch.compile(model) if compile else model
    x = torch.randn(batch, width, device=device)  # (B, width)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = forward(x).float().pow(2).mean()
        loss.backward()

    return step


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.harness [--smoke] [--out DIR] [--device D] [--compile]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="time toy MLP variants and write result files")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON + Markdown results")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile variant (slow on CPU)")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    info = device_report(device)
    if not args.smoke:
        print(json.dumps(info, indent=2, default=str))
        return 0
    width, batch = (4096, 8192) if device.type == "cuda" else (512, 256)
    config = {"workload": "4-layer MLP forward+backward", "width": width, "batch": batch, "repeats": 5}
    half = _half_dtype(device)
    variants = {"eager fp32": (None, False), f"autocast {str(half).removeprefix('torch.')}": (half, False)}
    if args.compile:
        variants["compiled fp32"] = (None, True)
    rows = []
    for label, (dtype, compile) in variants.items():
        step = _mlp_step(device, width, batch, dtype, compile)
        row = measure(step, device=device, warmup=2, repeats=config["repeats"], items=batch, unit="samples")
        rows.append({"name": label, **row})
    json_path, md_path = write_results("harness-smoke", speedup(rows, "eager fp32"), info, config, args.out)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
