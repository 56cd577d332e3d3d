"""Tests of bench/harness.py: timing, memory, result files, speedups and the ``--smoke`` CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

from bench.harness import (  # noqa: E402
    Timer,
    Timing,
    device_report,
    device_slug,
    format_value,
    markdown_table,
    measure,
    measure_training,
    peak_memory,
    speedup,
    time_fn,
    write_results,
)

CPU = torch.device("cpu")
FAKE_DEVICE = {"device": "cuda:0", "device_name": "NVIDIA Test GPU 80GB", "matmul_tflops": 512.3}


class SlowFirstCall:
    """A function whose first call sleeps (like a torch.compile call) and later calls are fast."""

    def __init__(self, first_s: float = 0.2) -> None:
        self.first_s, self.calls = first_s, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.first_s)


def test_time_fn_excludes_warmup_and_reports_first_call_apart() -> None:
    fn = SlowFirstCall(0.2)
    timing = time_fn(fn, device=CPU, warmup=2, repeats=7)
    assert fn.calls == 2 + 7
    assert len(timing.samples_s) == 7
    assert all(s > 0 for s in timing.samples_s)
    assert timing.first_call_s is not None and timing.first_call_s >= 0.2
    assert timing.median_s < 0.05, "the slow first (warm-up) call leaked into the timed samples"
    assert timing.min_s <= timing.median_s


def test_time_fn_measures_the_call_and_without_warmup_has_no_first_call() -> None:
    timing = time_fn(lambda: time.sleep(0.01), device="cpu", warmup=0, repeats=3)
    assert timing.first_call_s is None
    assert len(timing.samples_s) == 3
    assert 0.01 <= timing.median_s < 0.2


@pytest.mark.parametrize("warmup, repeats", [(-1, 3), (1, 0)])
def test_time_fn_rejects_bad_counts(warmup: int, repeats: int) -> None:
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_fn(lambda: None, device=CPU, warmup=warmup, repeats=repeats)


def test_timing_statistics_and_row() -> None:
    timing = Timing((0.003, 0.001, 0.002), first_call_s=1.5)
    assert timing.median_s == 0.002 and timing.min_s == 0.001
    assert timing.as_row() == pytest.approx({"median_ms": 2.0, "min_ms": 1.0, "first_call_s": 1.5})


def test_timer_times_a_block() -> None:
    with Timer(CPU) as t:
        time.sleep(0.02)
    assert 0.02 <= t.seconds < 0.5


def test_peak_memory_on_cpu_is_labelled_host_rss() -> None:
    with peak_memory(CPU) as peak:
        x = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    del x
    assert peak.key == "host_peak_rss_gib"
    assert peak.gib >= 64 / 1024  # the process now holds at least that much at its peak


def test_measure_returns_a_row_with_throughput_and_memory() -> None:
    row = measure(lambda: time.sleep(0.005), device=CPU, warmup=1, repeats=3, items=10, unit="images")
    assert set(row) == {"median_ms", "min_ms", "first_call_s", "images/s", "host_peak_rss_gib"}
    assert row["median_ms"] >= 5
    assert row["images/s"] == pytest.approx(10 / (row["median_ms"] / 1e3))


def test_speedup_on_known_numbers() -> None:
    rows = [{"name": "eager", "median_ms": 10.0}, {"name": "compiled", "median_ms": 4.0},
            {"name": "slow", "median_ms": 20.0}]
    out = speedup(rows, "eager")
    assert [r["vs baseline"] for r in out] == pytest.approx([1.0, 2.5, 0.5])
    assert "vs baseline" not in rows[0], "speedup must not modify its input rows"
    failed = speedup([{"name": "eager", "median_ms": 10.0}, {"name": "oom", "median_ms": None}], "eager")
    assert failed[1]["vs baseline"] is None  # a variant that could not run (e.g. out of memory) has no ratio
    tput = [{"name": "a", "tok/s": 100.0}, {"name": "b", "tok/s": 300.0}]
    assert speedup(tput, "a", key="tok/s", higher_is_better=True, column="x")[1]["x"] == pytest.approx(3.0)


def test_speedup_needs_exactly_one_baseline() -> None:
    with pytest.raises(ValueError, match="'missing'"):
        speedup([{"name": "a", "median_ms": 1.0}], "missing")
    with pytest.raises(ValueError, match="found 2"):
        speedup([{"name": "a", "median_ms": 1.0}, {"name": "a", "median_ms": 2.0}], "a")


@pytest.mark.parametrize(
    "value, text",
    [(None, "n/a"), (float("nan"), "n/a"), (3, "3"), (0.0, "0"), (1234.56, "1,235"), (12.345, "12.3"),
     (1.2345, "1.23"), (0.012345, "0.0123"), (True, "True"), ("a|b", "a\\|b")],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_markdown_table_has_union_of_columns_in_order() -> None:
    table = markdown_table([{"name": "a", "ms": 1.5}, {"name": "b", "ms": 2.0, "note": "x"}])
    lines = table.splitlines()
    assert lines[0] == "| name | ms | note |"
    assert lines[1] == "|---|---:|---|"
    assert lines[2:] == ["| a | 1.50 | n/a |", "| b | 2.00 | x |"]


def test_write_results_writes_json_and_markdown(tmp_path: Path) -> None:
    rows = speedup([{"name": "eager", "median_ms": 10.0}, {"name": "bf16", "median_ms": 5.0}], "eager")
    config = {"batch": 64, "steps": 10}
    json_path, md_path = write_results("gan-dcgan", rows, FAKE_DEVICE, config, out_dir=tmp_path / "res")
    assert json_path == tmp_path / "res" / "gan-dcgan_nvidia-test-gpu-80gb.json"
    assert md_path == json_path.with_suffix(".md")

    payload = json.loads(json_path.read_text())
    assert payload["name"] == "gan-dcgan"
    assert payload["device"] == FAKE_DEVICE and payload["config"] == config and payload["rows"] == rows
    assert payload["timestamp"][:4].isdigit() and "git_commit" in payload

    md = md_path.read_text().splitlines()
    assert md[0] == "# gan-dcgan"
    assert "NVIDIA Test GPU 80GB" in md[2] and payload["timestamp"][:10] in md[2]
    assert "512 TFLOP/s" in md[4]
    table = [line for line in md if line.startswith("|")]
    assert table[0] == "| name | median_ms | vs baseline |"
    assert table[2:] == ["| eager | 10.0 | 1.00 |", "| bf16 | 5.00 | 2.00 |"]
    assert not any("Not a GPU run" in line for line in md)


def test_write_results_rejects_empty_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows"):
        write_results("empty", [], FAKE_DEVICE, {}, out_dir=tmp_path)


def test_device_slug() -> None:
    h100 = {"device": "cuda:1", "device_name": "NVIDIA H100 80GB HBM3"}
    assert device_slug(h100) == "nvidia-h100-80gb-hbm3"
    assert device_slug({"device": "cpu", "device_name": "AMD EPYC 7B13"}) == "cpu"


def test_device_report_on_cpu_measures_speeds() -> None:
    start = time.perf_counter()
    report = device_report("cpu")
    assert time.perf_counter() - start < 10
    for key in ("device", "device_name", "driver", "torch", "cuda", "cudnn", "cpu_name", "cpu_cores",
                "matmul_dtype", "matmul_tflops", "h2d_gbps", "d2h_gbps", "d2d_gbps"):
        assert key in report, key
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    assert report["matmul_dtype"] == "float32"
    assert 0 < report["matmul_tflops"] < 1000
    assert report["d2d_gbps"] > 0
    json.dumps(report)  # must be storable as is


def test_smoke_cli_writes_both_files(tmp_path: Path) -> None:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.harness", "--smoke", "--device", "cpu", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert elapsed < 30, f"the smoke run took {elapsed:.0f} s"
    json_files, md_files = list(tmp_path.glob("*.json")), list(tmp_path.glob("*.md"))
    assert [p.name for p in json_files] == ["harness-smoke_cpu.json"] and len(md_files) == 1
    rows = json.loads(json_files[0].read_text())["rows"]
    assert [r["name"] for r in rows][0] == "eager fp32" and len(rows) == 2
    assert rows[0]["vs baseline"] == pytest.approx(1.0) and rows[1]["vs baseline"] > 0
    assert all(r["median_ms"] > 0 and r["first_call_s"] > 0 for r in rows)
    assert "| eager fp32 |" in md_files[0].read_text()


def test_measure_training_times_warmup_apart_and_counts_items():
    calls = []

    def run(n: int) -> None:
        calls.append(n)
        time.sleep(0.01 * n)

    row = measure_training(run, device="cpu", warmup=2, steps=5, items_per_step=8)
    assert calls == [2, 5]
    assert 0.015 < row["first_call_s"] < 0.5
    assert 8 * 5 / 0.5 < row["images/s"] < 8 * 5 / 0.045  # 40 images in ~0.05 s
