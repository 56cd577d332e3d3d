"""bench/gpu_check.py dry-run on a CPU: the benchmark stage, the skip paths and the T4-emulated rehearsal stage."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from bench import gpu_check

NOTEBOOK_OK = """\
import json, os
from aigc_lib.runtime import start_run
run = start_run("tiny", profile=PROFILE, run_dir=RUN_DIR)
steps = run.profile.count(smoke=2, quick=20, full=5000)
run.save_results({"steps": steps, "env_emulate": os.environ.get("AIGC_EMULATE")})
"""


def tiny_notebook(path: Path, body: str) -> Path:
    """A notebook with a papermill parameters cell (PROFILE, RUN_DIR) and one code cell."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "smoke"\nRUN_DIR = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_dry_run_benchmarks_and_skip_flag(tmp_path):
    assert gpu_check.main(["--smoke", "--device", "cpu", "--benches", "trainer", "--skip-rehearsal",
                           "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu-check_cpu.json").read_text())
    (bench,) = report["benchmarks"]
    assert bench["name"] == "trainer" and bench["status"] == "ok", bench.get("log_tail")
    (result,) = bench["results"]  # bench.trainer's own JSON, read back
    assert {row["name"] for row in result["rows"]} == {"plain loop (DataLoader, fp32)", "trainer fp32"}
    assert all(row["images/s"] > 0 for row in result["rows"])
    assert report["rehearsal"] == {"status": "skipped (--skip-rehearsal)", "rows": []}
    md = (tmp_path / "gpu-check_cpu.md").read_text()
    assert "| bench.trainer | ok |" in md and "| trainer fp32 |" in md and "skipped (--skip-rehearsal)" in md


def test_missing_wheels_skip_only_what_needs_them(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "missing_modules", lambda names: ["diffusers", "papermill"])
    report = gpu_check.check(tmp_path, gpu_check.torch.device("cpu"), smoke=True, benches=["diffusion"],
                             budget_s=60, skip_rehearsal=False)
    assert report["benchmarks"][0]["status"] == "skipped: diffusers not installed (bench/README.md)"
    assert report["rehearsal"]["status"] == "skipped: papermill not installed (bench/README.md)"


@pytest.mark.notebooks
def test_rehearsal_stage_runs_notebooks_under_t4_emulation(tmp_path, monkeypatch):
    monkeypatch.delenv("AIGC_EMULATE", raising=False)
    ok = tiny_notebook(tmp_path / "01_ok.ipynb", NOTEBOOK_OK)
    bad = tiny_notebook(tmp_path / "02_bad.ipynb", "raise RuntimeError('a shape bug of the full profile')")
    report = gpu_check.check(tmp_path / "out", gpu_check.torch.device("cpu"), smoke=True, benches=[],
                             budget_s=300, skip_rehearsal=False, notebooks=[ok, bad])
    rows = {r["notebook"]: r for r in report["rehearsal"]["rows"]}
    assert rows["01_ok"]["status"] == "ok", report["rehearsal"]["log_tail"]
    assert rows["02_bad"]["status"] == "failed" and "a shape bug of the full profile" in rows["02_bad"]["error"]
    assert report["rehearsal"]["status"] == "incomplete" and report["rehearsal"]["emulate"] == "t4"
    results = json.loads((tmp_path / "out" / "rehearse" / "01_ok" / "results.json").read_text())
    # the notebook ran in the full profile, counts x0.01 (5000 -> 50), as a T4 (fp16 + GradScaler on this CPU)
    assert (results["profile"], results["steps"], results["steps_scale"]) == ("full", 50, 0.01)
    assert results["env_emulate"] == "t4" and results["emulate"] == "t4" and results["precision"] == "fp16"
    md = (tmp_path / "out" / "gpu-check_cpu.md").read_text()
    assert "| 01_ok | ok |" in md and "| 02_bad | failed |" in md
