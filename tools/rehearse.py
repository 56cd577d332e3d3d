"""Rehearse the full profiles in minutes: `make rehearse` (or `python tools/rehearse.py`).

Every numbered notebook runs in the **full** profile, with its full model and data sizes, but with its step
and sample counts multiplied by ``$AIGC_STEPS_SCALE`` (default 0.01): notebooks count with
``run.profile.count(...)``, library recipes with ``TrainConfig(scale_steps=True)``. Shape, dtype and memory bugs
of the full profiles (what every Colab learner runs, since ``auto`` is ``full`` on any GPU) show up without the
hours of training. ``--emulate t4`` adds ``AIGC_EMULATE=t4``: no bf16, fp16 + GradScaler, and on CUDA a 15 GiB
memory cap.

Each notebook runs in its own process group with a hard time limit; the table (notebook, status, seconds, CUDA
peak memory, error) is written to ``<out>/rehearsal.json`` and ``<out>/rehearsal.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: aigc_lib is the repository's

from aigc_lib.course import course_notebooks, execute_notebook
from aigc_lib.storage import atomic_write


@dataclass
class Rehearsal:
    """One notebook's rehearsal: ok, failed, timeout or skipped (budget spent)."""

    notebook: str
    status: str
    seconds: float
    cuda_peak_memory_gib: float | None = None
    error: str | None = None


def run_one(notebook: Path, out_dir: Path, cell_timeout: int) -> dict[str, Any]:
    """Execute one notebook (full profile) in this process and return its row as a dict."""
    run = execute_notebook(notebook, out_dir, profile="full", timeout=cell_timeout)
    return asdict(Rehearsal(run.name, "ok" if run.ok else "failed", round(run.seconds, 1),
                            run.results.get("cuda_peak_memory_gib"), _last_lines(run.error)))


def _last_lines(error: str | None, n: int = 12, limit: int = 3000) -> str | None:
    """The end of a papermill error (the exception and the cell's last traceback lines)."""
    if not error:
        return None
    return "\n".join(error.strip().splitlines()[-n:])[-limit:]


def rehearse_notebook(notebook: Path, out_dir: Path, limit_s: float, cell_timeout: int) -> Rehearsal:
    """Run :func:`run_one` in a child process group, killed (kernel included) after ``limit_s`` seconds."""
    row_file = out_dir / f"{notebook.stem}.rehearsal.json"
    row_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(notebook), "--out", str(out_dir),
           "--cell-timeout", str(cell_timeout)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    try:
        child.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # this child's own group: papermill and its kernel
        child.wait()
        return Rehearsal(notebook.stem, "timeout", round(time.perf_counter() - start, 1),
                         error=f"still running after {limit_s:.0f} s (the limit for this notebook); killed")
    if row_file.is_file():
        return Rehearsal(**json.loads(row_file.read_text()))
    return Rehearsal(notebook.stem, "failed", round(time.perf_counter() - start, 1),
                     error=f"the rehearsal process exited with code {child.returncode} before writing its row")


def rehearse(notebooks: list[Path], out_dir: Path, scale: float, emulate: str | None, budget_s: float,
             notebook_timeout_s: float, cell_timeout: int) -> dict[str, Any]:
    """Rehearse ``notebooks`` in order within ``budget_s`` seconds; write and return the summary."""
    os.environ["AIGC_STEPS_SCALE"] = str(scale)  # inherited by every child and its kernel
    os.environ["AIGC_PROFILE"] = "full"
    os.environ["AIGC_HEADLESS"] = "1"
    if emulate:
        os.environ["AIGC_EMULATE"] = emulate
    else:
        os.environ.pop("AIGC_EMULATE", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[Rehearsal] = []
    for notebook in notebooks:
        left = budget_s - (time.perf_counter() - start)
        if left < 10:
            rows.append(Rehearsal(notebook.stem, "skipped", 0.0, error=f"the {budget_s:.0f} s budget was spent"))
            continue
        print(f"[rehearse] {notebook.name}: full profile, counts x{scale:g}"
              f"{', emulating a T4' if emulate else ''} ...", flush=True)
        row = rehearse_notebook(notebook, out_dir, min(left, notebook_timeout_s), cell_timeout)
        print(f"[rehearse]   {row.status} in {row.seconds:.0f} s"
              + (f", CUDA peak {row.cuda_peak_memory_gib} GiB" if row.cuda_peak_memory_gib is not None else "")
              + (f"\n{row.error}" if row.error else ""), flush=True)
        rows.append(row)
    summary = {"scale": scale, "emulate": emulate or "none", "budget_s": budget_s,
               "seconds": round(time.perf_counter() - start, 1), "device": _device_name(),
               "python": platform.python_version(), "rows": [asdict(r) for r in rows]}
    write_summary(summary, out_dir)
    return summary


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


def write_summary(summary: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``rehearsal.json`` and a Markdown table ``rehearsal.md`` in ``out_dir``."""
    json_path = atomic_write(out_dir / "rehearsal.json", json.dumps(summary, indent=2) + "\n")
    md_path = atomic_write(out_dir / "rehearsal.md", summary_markdown(summary))
    return json_path, md_path


def summary_markdown(summary: dict[str, Any]) -> str:
    """The rehearsal as a Markdown table (errors shortened to their last line)."""
    lines = [f"# Rehearsal of the full profiles (step and sample counts x{summary['scale']:g})", "",
             (f"Device: {summary['device']}; emulation: {summary['emulate']}; {summary['seconds']:.0f} s in all "
             f"(budget {summary['budget_s']:.0f} s)."), "",
             "| notebook | status | seconds | CUDA peak GiB | error |", "|---|---|---:|---:|---|"]
    for row in summary["rows"]:
        peak = "" if row["cuda_peak_memory_gib"] is None else f"{row['cuda_peak_memory_gib']:.2f}"
        error = (row["error"] or "").strip().splitlines()[-1:] or [""]
        lines.append(f"| {row['notebook']} | {row['status']} | {row['seconds']:.0f} | {peak} | "
                     f"{error[0][:160].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. --only 00 03")
    parser.add_argument("--notebooks", nargs="+", type=Path, help="notebook files instead of the course's")
    parser.add_argument("--scale", type=float, default=float(os.environ.get("AIGC_STEPS_SCALE") or 0.01),
                        help="step and sample counts multiplier, in (0, 1] (default $AIGC_STEPS_SCALE or 0.01)")
    parser.add_argument("--emulate", choices=["t4"], default=os.environ.get("AIGC_EMULATE") or None)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "rehearse")
    parser.add_argument("--budget-s", type=float, default=6 * 3600, help="stop starting notebooks after this")
    parser.add_argument("--notebook-timeout-s", type=float, default=3600, help="kill one notebook after this")
    parser.add_argument("--cell-timeout", type=int, default=3600, help="papermill's limit for one cell")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args(argv)
    if args.one is not None:
        row = run_one(args.one, args.out, args.cell_timeout)
        atomic_write(args.out / f"{args.one.stem}.rehearsal.json", json.dumps(row))
        return 0
    if not 0 < args.scale <= 1:
        parser.error(f"--scale {args.scale}: give a number in (0, 1], e.g. 0.01")
    notebooks = [nb.resolve() for nb in args.notebooks or course_notebooks()
                 if not args.only or any(nb.name.startswith(o) for o in args.only)]
    if not notebooks:
        parser.error(f"no notebook matches --only {args.only}")
    summary = rehearse(notebooks, args.out, args.scale, args.emulate, args.budget_s, args.notebook_timeout_s,
                       args.cell_timeout)
    print(f"[rehearse] wrote {args.out / 'rehearsal.md'}")
    return 0 if all(r["status"] == "ok" for r in summary["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
