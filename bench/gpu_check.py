"""One prepared check for a lent GPU machine: the four benchmarks, short, then a T4-emulated rehearsal.

    make gpu-check                                   # ~9 minutes on one H100/H200, no internet needed
    python -m bench.gpu_check --out "$OUT"           # the same, results into another folder
    python -m bench.gpu_check --smoke --device cpu --benches trainer --skip-rehearsal   # dry run (CI test)

1. Preflight: the device report, and which of diffusers / papermill / ipykernel are importable (the GPU
   machine has none of them unless their wheels were brought: see bench/README.md); what is missing skips only
   the stages that need it, and says so.
2. ``bench.trainer``, ``bench.gan``, ``bench.lm``, ``bench.diffusion`` with few timed steps (their own CLI
   flags; ``--smoke`` sizes in a dry run), each in a subprocess with a hard time limit.
3. ``tools/rehearse.py --emulate t4``: every notebook in the full profile with counts x0.01, as on a T4 (fp16 +
   GradScaler, 15 GiB memory cap), until the time budget is spent.

Writes ``gpu-check_<device>.json`` and ``.md`` (every benchmark's result and the rehearsal table) in ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from aigc_lib.storage import atomic_write
from bench.harness import RESULTS_DIR, default_device, device_report, device_slug

REPO = Path(__file__).resolve().parents[1]
BENCHES = ("trainer", "gan", "lm", "diffusion")
NEEDS = {"diffusion": ("diffusers",), "rehearsal": ("papermill", "ipykernel")}  # 07-09 fail without diffusers
# Short GPU settings and each benchmark's hard limit (s). Chosen to fit 9 minutes on one H100/H200 with
# the rehearsal's share (the rest of the budget); not yet timed on such a machine.
SHORT_ARGS = {
    "trainer": ["--batch", "1024", "--steps", "50"],
    "gan": ["--batch", "1024", "--steps", "100", "--judge-steps", "300", "--n-eval", "1000"],
    "lm": ["--variants", "plain", "trainer", "--batch", "16", "--steps", "20", "--warmup", "5"],
    "diffusion": ["--steps", "10", "--warmup", "1", "--repeats", "1", "--train-steps", "10", "--train-warmup", "3",
                  "--lora-batch", "1", "--no-compile"],
}
SHORT_LIMITS = {"trainer": 50, "gan": 70, "lm": 90, "diffusion": 110}
SMOKE_ARGS = {"trainer": ["--steps", "3"], "lm": ["--variants", "plain", "trainer"]}  # a dry run: the code path only


def missing_modules(names: Sequence[str]) -> list[str]:
    """Which of ``names`` cannot be imported here."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def run_benchmark(name: str, args: list[str], out_dir: Path, limit_s: float) -> dict[str, Any]:
    """``python -m bench.<name> <args> --out <out_dir>/<name>`` with a time limit; its result files, read back."""
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"bench.{name}", *args, "--out", str(folder)]
    env = {k: v for k, v in os.environ.items() if k != "AIGC_EMULATE"}  # benchmarks measure the real GPU
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit_s)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"timeout ({limit_s:.0f} s)"
        log = _text(exc.stdout) + _text(exc.stderr)
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    tables = [p.read_text() for p in sorted(folder.glob("*.md"))]
    return {"name": name, "status": status, "seconds": round(time.perf_counter() - start, 1),
            "command": " ".join(cmd[1:]), "results": results, "tables": tables, "log_tail": log[-4000:]}


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""


def run_rehearsal(out_dir: Path, budget_s: float, smoke: bool, only: Sequence[str] | None,
                  notebooks: Sequence[Path] | None) -> dict[str, Any]:
    """``tools/rehearse.py --emulate t4`` within ``budget_s``; its summary (rows per notebook)."""
    folder = out_dir / "rehearse"
    cmd = [sys.executable, str(REPO / "tools" / "rehearse.py"), "--emulate", "t4", "--scale", "0.01",
           "--out", str(folder), "--budget-s", str(max(budget_s - 15, 10)),
           "--notebook-timeout-s", str(max(budget_s - 15, 10))]
    cmd += ["--only", *only] if only else []
    cmd += ["--notebooks", *map(str, notebooks)] if notebooks else []
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=budget_s + 60)
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        log = _text(exc.stdout) + _text(exc.stderr)
    summary_file = folder / "rehearsal.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {"rows": []}
    status = "ok" if summary["rows"] and all(r["status"] == "ok" for r in summary["rows"]) else (
        "incomplete" if summary["rows"] else "failed (no summary written)")
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), **summary,
            "log_tail": log[-4000:]}


def check(out_dir: Path, device: torch.device, smoke: bool, benches: Sequence[str], budget_s: float,
          skip_rehearsal: bool, only: Sequence[str] | None = None,
          notebooks: Sequence[Path] | None = None) -> dict[str, Any]:
    """Preflight, benchmarks, rehearsal; returns the report (also written as JSON and Markdown)."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    info = device_report(device)
    missing = missing_modules(["diffusers", "papermill", "ipykernel"])
    print(f"[gpu-check] {info['device_name']} ({device}); missing modules: {', '.join(missing) or 'none'}", flush=True)
    rows = []
    for name in benches:
        absent = [m for m in NEEDS.get(name, ()) if m in missing]
        if absent:
            rows.append({"name": name, "status": f"skipped: {', '.join(absent)} not installed (bench/README.md)",
                         "seconds": 0.0, "results": [], "tables": []})
            continue
        args = (["--smoke", *SMOKE_ARGS.get(name, [])] if smoke else SHORT_ARGS[name]) + ["--device", str(device)]
        limit = 600 if smoke else SHORT_LIMITS[name]
        print(f"[gpu-check] bench.{name} (limit {limit} s) ...", flush=True)
        rows.append(run_benchmark(name, args, out_dir, limit))
        print(f"[gpu-check]   {rows[-1]['status']} in {rows[-1]['seconds']:.0f} s", flush=True)
    left = budget_s - (time.perf_counter() - start)
    absent = [m for m in NEEDS["rehearsal"] if m in missing]
    if skip_rehearsal:
        rehearsal: dict[str, Any] = {"status": "skipped (--skip-rehearsal)", "rows": []}
    elif absent:
        rehearsal = {"status": f"skipped: {', '.join(absent)} not installed (bench/README.md)", "rows": []}
    elif left < 30:
        rehearsal = {"status": f"skipped: {left:.0f} s of the {budget_s:.0f} s budget left", "rows": []}
    else:
        print(f"[gpu-check] rehearsal under AIGC_EMULATE=t4 ({left:.0f} s left) ...", flush=True)
        rehearsal = run_rehearsal(out_dir, left, smoke, only, notebooks)
        print(f"[gpu-check]   {rehearsal['status']} in {rehearsal['seconds']:.0f} s", flush=True)
    report = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "device": info,
              "smoke": smoke, "budget_s": budget_s, "missing_modules": missing, "benchmarks": rows,
              "rehearsal": rehearsal, "seconds": round(time.perf_counter() - start, 1)}
    stem = out_dir / f"gpu-check_{device_slug(info)}"
    atomic_write(stem.with_suffix(".json"), json.dumps(report, indent=2, default=str) + "\n")
    atomic_write(stem.with_suffix(".md"), markdown(report))
    print(f"[gpu-check] wrote {stem}.json and .md ({report['seconds']:.0f} s)", flush=True)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report for people: a status table, each benchmark's own table, the rehearsal table."""
    info = report["device"]
    lines = [f"# GPU check: {info['device_name']}", "",
             (f"{report['timestamp'][:16].replace('T', ' ')} UTC, torch {info['torch']}, CUDA {info['cuda']}, "
             f"{'smoke (dry run)' if report['smoke'] else 'short timing mode'}, {report['seconds']:.0f} s of a "
             f"{report['budget_s']:.0f} s budget; missing modules: {', '.join(report['missing_modules']) or 'none'}."),
             "", "| stage | status | seconds |", "|---|---|---:|"]
    lines += [f"| bench.{r['name']} | {r['status']} | {r['seconds']:.0f} |" for r in report["benchmarks"]]
    rehearsal = report["rehearsal"]
    lines += [f"| rehearsal (AIGC_EMULATE=t4) | {rehearsal['status']} | {rehearsal.get('seconds', 0):.0f} |", ""]
    for row in report["benchmarks"]:  # each benchmark's own Markdown, its headings one level down
        lines += ["\n".join("#" + line if line.startswith("#") else line for line in t.splitlines())
                  for t in row["tables"]]
    if rehearsal["rows"]:
        lines += ["", "## Rehearsal (full profile, counts x0.01, AIGC_EMULATE=t4)", "",
                  "| notebook | status | seconds | CUDA peak GiB | error |", "|---|---|---:|---:|---|"]
        for r in rehearsal["rows"]:
            peak = "" if r["cuda_peak_memory_gib"] is None else f"{r['cuda_peak_memory_gib']:.2f}"
            error = ((r["error"] or "").strip().splitlines() or [""])[-1][:160].replace("|", "/")
            lines.append(f"| {r['notebook']} | {r['status']} | {r['seconds']:.0f} | {peak} | {error} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--smoke", action="store_true", help="dry run: every benchmark at --smoke size (a CPU)")
    parser.add_argument("--benches", nargs="*", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--budget-s", type=float, default=540, help="the whole check's time (default 9 minutes)")
    parser.add_argument("--skip-rehearsal", action="store_true")
    parser.add_argument("--only", nargs="*", help="rehearse only these notebook prefixes, e.g. --only 00 03")
    parser.add_argument("--notebooks", nargs="+", type=Path, help="rehearse these notebook files instead")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but this machine has no CUDA GPU")
    report = check(args.out, device, args.smoke, args.benches, args.budget_s, args.skip_rehearsal, args.only,
                   args.notebooks)
    statuses = [r["status"] for r in report["benchmarks"]] + [report["rehearsal"]["status"]]
    return 0 if all(s == "ok" or s.startswith("skipped") for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
