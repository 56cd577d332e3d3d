"""Run the course headless: execute notebooks with papermill and publish them with their pictures.

``make course`` (an instructor before class) and the papermill tests both call :func:`execute_notebook`.
"""
from __future__ import annotations

import base64
import html
import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered chapter notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


@dataclass
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    executed: Path
    run_dir: Path
    seconds: float
    error: str | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def execute_notebook(notebook: Path, out_dir: Path, profile: str = "auto",
                     parameters: dict[str, Any] | None = None, timeout: int = 3600) -> NotebookRun:
    """Execute ``notebook`` with papermill into ``out_dir/<name>.ipynb``; its run folder is ``out_dir/<name>``."""
    import papermill as pm

    name = notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / name
    executed = out_dir / notebook.name
    params = {"PROFILE": profile, "RUN_DIR": str(run_dir.resolve()), **(parameters or {})}
    os.environ["AIGC_HEADLESS"] = "1"  # inherited by the kernel: figures are also saved as PNG
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, kernel_name="python3",
                            cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout)
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    seconds = time.perf_counter() - start
    results_file = run_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    return NotebookRun(name, executed, run_dir, seconds, error, results)


def extract_images(executed: Path, folder: Path) -> list[Path]:
    """Write every PNG output of an executed notebook to ``folder`` and return the paths."""
    nb = json.loads(executed.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                path = folder / f"output-{len(paths) + 1:02d}.png"
                path.write_bytes(base64.b64decode(data if isinstance(data, str) else "".join(data)))
                paths.append(path)
    return paths


def notebook_to_html(executed: Path) -> Path | None:
    """Render an executed notebook to HTML next to it (nbconvert), or None if that fails."""
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
    except Exception as exc:  # an index without HTML pages is still useful
        print(f"[aigc.course] could not render {executed.name} to HTML: {exc}")
        return None
    path = executed.with_suffix(".html")
    path.write_text(body, encoding="utf-8")
    return path


def write_index(runs: list[NotebookRun], out_dir: Path, profile: str) -> Path:
    """Write ``index.html``: one section per notebook with status, time, key results and its pictures."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>AIGC from zero to practice: executed course</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-height:260px;margin:4px;"
        "border:1px solid #ddd}.fail{color:#b00}.ok{color:#070}pre{background:#f6f6f6;padding:6px}</style>",
        f"<h1>AIGC from zero to practice</h1><p>Executed headless, profile <b>{html.escape(profile)}</b>, "
        f"{time.strftime('%Y-%m-%d %H:%M')}.</p>",
    ]
    for run in runs:
        status = "<span class='ok'>ok</span>" if run.ok else "<span class='fail'>FAILED</span>"
        page = run.executed.with_suffix(".html")
        link = f"<a href='{page.name}'>{html.escape(run.name)}</a>" if page.is_file() else html.escape(run.name)
        parts.append(f"<h2>{link}</h2><p>{status}, {run.seconds:.0f} s</p>")
        if run.error:
            parts.append(f"<pre>{html.escape(run.error[-2000:])}</pre>")
        shown = {k: v for k, v in run.results.items() if isinstance(v, (int, float, str, bool))}
        if shown:
            parts.append(f"<pre>{html.escape(json.dumps(shown, indent=1))}</pre>")
        for image in extract_images(run.executed, out_dir / run.name / "images") if run.executed.is_file() else []:
            parts.append(f"<img src='{image.relative_to(out_dir).as_posix()}'>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def build_course(out_dir: Path, profile: str = "auto", only: list[str] | None = None) -> list[NotebookRun]:
    """Execute every chapter notebook (or those whose name starts with one of ``only``) and write the index."""
    notebooks = [nb for nb in course_notebooks() if not only or any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise FileNotFoundError(f"no notebooks matched {only!r} in {NOTEBOOKS}")
    runs = []
    for notebook in notebooks:
        print(f"[aigc.course] executing {notebook.name} (profile {profile}) ...", flush=True)
        run = execute_notebook(notebook, out_dir, profile)
        print(f"[aigc.course]   {'ok' if run.ok else 'FAILED'} in {run.seconds:.0f} s", flush=True)
        if run.executed.is_file():
            notebook_to_html(run.executed)
        runs.append(run)
    index = write_index(runs, out_dir, profile)
    print(f"[aigc.course] wrote {index}")
    return runs
