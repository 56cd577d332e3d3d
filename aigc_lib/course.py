"""Run the course headless: execute notebooks with papermill and publish them with their pictures.

``make course`` (an instructor before class) and the papermill tests both call :func:`execute_notebook`.
While a notebook runs, :class:`Progress` shows the cell, the elapsed time and an estimate of what is left;
at the end :func:`summary_table` prints one line per notebook and :func:`write_index` writes the HTML page.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TextIO

from aigc_lib.runtime import resolve_profile
from aigc_lib.storage import atomic_write

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TIMINGS = "timings.json"  # in the output folder: measured seconds per notebook and profile, for the next ETA
META_KEYS = ("notebook", "profile", "device", "precision", "online", "seconds", "matmul_gflops")  # save_results adds


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The numbered chapter notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The chapters whose name starts with one of ``only`` (e.g. ``["03", "05"]``), or all of them."""
    chapters = course_notebooks(folder)
    if not only:
        return chapters
    only = [o.zfill(2) if o.isdigit() else Path(o).name for o in only]  # "3" means 03; a path means its name
    unknown = [o for o in only if not any(nb.name.startswith(o) for nb in chapters)]
    if unknown:
        names = ", ".join(nb.stem for nb in chapters)
        raise ValueError(f"--only {' '.join(unknown)}: no chapter notebook starts with that; the chapters are {names}")
    return [nb for nb in chapters if any(nb.name.startswith(o) for o in only)]


# --------------------------------------------------------------------------------------------- time estimates
_TIME = re.compile(r"\b(smoke|quick|full)\s*≈\s*(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?\s*(s|min|h)\b")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600}


def stated_times(notebook: Path) -> dict[str, float]:
    """Seconds per profile from the **Time:** line of the notebook's first cell (the upper end of a range)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    text = "".join(cells[0].get("source", "")) if cells else ""
    text = text[text.find("**Time:**"):] if "**Time:**" in text else ""
    return {m[1]: float(m[3] or m[2]) * _UNIT_SECONDS[m[4]] for m in _TIME.finditer(" ".join(text.split()))}


def load_timings(out_dir: Path) -> dict[str, dict[str, float]]:
    """Seconds measured by earlier builds into ``out_dir``: ``{notebook: {profile: seconds}}``."""
    path = out_dir / TIMINGS
    return json.loads(path.read_text()) if path.is_file() else {}


def record_timing(out_dir: Path, name: str, profile: str, seconds: float) -> None:
    """Remember how long ``name`` took in ``profile`` on this machine, for the next build's ETA."""
    timings = load_timings(out_dir)
    timings.setdefault(name, {})[profile] = round(seconds, 1)
    atomic_write(out_dir / TIMINGS, json.dumps(timings, indent=1, sort_keys=True))


def estimate_seconds(notebook: Path, profile: str, timings: dict[str, dict[str, float]]) -> tuple[float | None, str]:
    """The expected run time and where it comes from: a run on this machine, else the notebook's Time line."""
    measured = timings.get(notebook.stem, {}).get(profile)
    if measured:
        return measured, "last run here"
    stated = stated_times(notebook).get(profile)
    return (stated, "the notebook's Time line") if stated else (None, "no estimate")


def minutes(seconds: float) -> str:
    """``75`` -> ``"1:15"`` (m:ss), for progress lines."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------- progress
class Progress:
    """Live progress of one notebook: cell i of N, elapsed, time left; nbclient's ``on_cell_start`` hook."""

    def __init__(self, name: str, n_cells: int, estimate: float | None, source: str, stream: TextIO = sys.stdout,
                 every: float | None = None):
        self.name, self.n_cells, self.estimate, self.source, self.stream = name, n_cells, estimate, source, stream
        self.live = stream.isatty()
        self.every = every if every is not None else (1.0 if self.live else 60.0)  # a log gets a line a minute
        self.cell = 0
        self.start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def line(self) -> str:
        """``03_dcgan  cell 7/22  2:13 elapsed  ~1:40 left (the notebook's Time line)``."""
        elapsed = time.perf_counter() - self.start
        text = f"{self.name}  cell {self.cell}/{self.n_cells}  {minutes(elapsed)} elapsed"
        if self.estimate:
            left = self.estimate - elapsed
            text += f"  ~{minutes(left)} left" if left > 0 else f"  {minutes(-left)} over the estimate"
            text += f" ({self.source}: {minutes(self.estimate)})"
        return text

    def show(self) -> None:
        if self.live:  # one line rewritten in place, cut to the terminal's width so that it never wraps
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + ("[aigc.course] " + self.line())[:width])
        else:
            self.stream.write("[aigc.course] " + self.line() + "\n")
        self.stream.flush()

    def on_cell_start(self, cell: Any, cell_index: int) -> None:
        """Count code cells as the kernel reaches them (markdown cells are passed to the hook too)."""
        if cell.get("cell_type") == "code" and "".join(cell.get("source", "")).strip():
            self.cell = min(self.cell + 1, self.n_cells)
            if self.live:
                self.show()

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self.show()

    def __enter__(self) -> Self:
        self.show()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def count_code_cells(notebook: Path) -> int:
    """Non-empty code cells, plus the parameters cell papermill injects."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return 1 + sum(c.get("cell_type") == "code" and bool("".join(c.get("source", "")).strip()) for c in cells)


# --------------------------------------------------------------------------------------------- execution
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


def kernel_config() -> Any:
    """Kernel manager settings: CurveZMQ encryption, which ipykernel warns about on stderr when it is off.

    The kernelspec ipykernel installs declares ``supported_encryption: curve``; ``transport_encryption="auto"``
    makes jupyter_client provision the keys (jupyter_client >= 8.10; older ones ignore the setting).
    """
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto" if zmq.has("curve") else "disabled"}})


def execute_notebook(notebook: Path, out_dir: Path, profile: str = "auto",
                     parameters: dict[str, Any] | None = None, timeout: int = 3600,
                     progress: Progress | None = None) -> NotebookRun:
    """Execute ``notebook`` with papermill into ``out_dir/<name>.ipynb``; its run folder is ``out_dir/<name>``."""
    import papermill as pm

    name = notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / name
    executed = out_dir / notebook.name
    params = {"PROFILE": profile, "RUN_DIR": str(run_dir.resolve()), **(parameters or {})}
    os.environ["AIGC_HEADLESS"] = "1"  # inherited by the kernel: figures are also saved as PNG
    hooks = {"on_cell_start": progress.on_cell_start} if progress else {}
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(executed), parameters=params, kernel_name="python3",
                            cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                            config=kernel_config(), **hooks)
    except Exception as exc:  # noqa: BLE001 (papermill raises PapermillExecutionError with the cell's traceback)
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    seconds = time.perf_counter() - start
    results_file = run_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    return NotebookRun(name, executed, run_dir, seconds, error, results)


# --------------------------------------------------------------------------------------------- key results
@dataclass(frozen=True)
class KeyResult:
    """How to show some ``results.json`` values in words: a label, the keys (``a.b`` reads a nested value), a unit."""

    label: str
    keys: tuple[str, ...]
    unit: str = ""  # "%" (a share 0-1), "s", "bytes", "MiB", a count's noun, or "" (a plain number)
    sep: str = " → "  # " → " for before → after, " vs " for two alternatives


# The first one a notebook's results contain is its headline in the summary table. Keys not listed here are
# still shown (under "more numbers"), labelled from their names.
KEY_RESULTS = (
    KeyResult("test perplexity, before → after fine-tuning", ("ppl_before", "ppl_after")),
    KeyResult("test perplexity: base → full fine-tuning → LoRA", ("ppl_base", "ppl_full", "ppl_lora")),
    KeyResult("test perplexity: bottleneck adapter vs prefix tuning (on the tokens its prefix leaves room for)",
              ("ppl_adapter", "ppl_prefix"), "", " vs "),
    KeyResult("prompts drawn right for the new concept (star), before → after LoRA",
              ("star_before.all", "star_after.all"), "%"),
    KeyResult("prompts drawn right for the old shapes, before → after LoRA", ("old_before.all", "old_after.all"), "%"),
    KeyResult("prompts drawn right (colour, shape and position) at the best guidance scale", ("best.all",), "%"),
    KeyResult("digits drawn as asked: untrained → trained",
              ("digit_accuracy_untrained", "digit_accuracy_trained"), "%"),
    KeyResult("FD-digits (lower is better): untrained → trained", ("fd_untrained", "fd_trained")),
    KeyResult("FD-digits (lower is better): untrained → trained", ("fd_untrained", "fd_final")),
    KeyResult("FD-digits (lower is better): untrained → DDPM → DDIM", ("fd_untrained", "fd_ddpm", "fd_ddim")),
    KeyResult("1-D GAN: distance to the data (W1), before → after training", ("gan1d_w1_before", "gan1d_w1_after")),
    KeyResult("validation loss: initial → trained", ("val_loss_initial", "val_loss")),
    KeyResult("loss: untrained → trained", ("loss_untrained", "loss_trained")),
    KeyResult("training loss: first → last step", ("loss_first", "loss_last")),
    KeyResult("FD-digits of real vs real images (the floor)", ("fd_real_vs_real",)),
    KeyResult("classes drawn: untrained → trained", ("coverage_untrained", "coverage_trained"), "classes"),
    KeyResult("classes drawn", ("coverage_final",), "classes"),
    KeyResult("classes drawn: DDPM vs DDIM", ("coverage_ddpm", "coverage_ddim"), "classes", " vs "),
    KeyResult("ring modes found: plain GAN vs WGAN-GP", ("ring_modes_vanilla", "ring_modes_wgan_gp"), "modes", " vs "),
    KeyResult("validation perplexity", ("val_ppl",)),
    KeyResult("BLEU on held-out questions: base → fine-tuned", ("bleu_base", "bleu")),
    KeyResult("ROUGE-L on held-out questions: base → fine-tuned", ("rouge_l_base", "rouge_l")),
    KeyResult("VAE reconstruction loss: first → last step", ("vae_loss_first", "vae_loss_last")),
    KeyResult("UNet noise-prediction loss: first → last step", ("unet_loss_first", "unet_loss_last")),
    KeyResult("trainable share with LoRA", ("lora_share",), "%"),
    KeyResult("training memory: full fine-tuning vs LoRA", ("memory_full_mib", "memory_lora_mib"), "MiB", " vs "),
    KeyResult("adapter vs model file size", ("adapter_bytes", "unet_bytes"), "bytes", " vs "),
    KeyResult("adapter vs model file size", ("adapter_bytes", "full_bytes"), "bytes", " vs "),
    KeyResult("sampling time: DDPM vs DDIM", ("ddpm_seconds", "ddim_seconds"), "s", " vs "),
    KeyResult("judge accuracy on real images", ("judge_accuracy",), "%"),
    KeyResult("target of the chapter met", ("target_met",)),
    KeyResult("training steps", ("steps",), "steps"),
    KeyResult("training time", ("train_seconds",), "s"),
    KeyResult("data source", ("source",)),
    KeyResult("model source", ("model_source",)),
)


def lookup(results: dict[str, Any], key: str) -> Any:
    """``results["a"]["b"]`` for ``"a.b"``; None when a part is missing."""
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


_SINGULAR = {"classes": "class", "modes": "mode", "steps": "step"}


def format_value(value: Any, unit: str = "") -> str:
    """A number in words and units: ``0.38, "%"`` -> ``"38 %"``, ``130, "s"`` -> ``"2.2 min"``, ``True`` -> ``"yes"``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if unit == "%":
        return f"{100 * value:.3g} %"
    if unit == "s":
        return f"{value:.3g} s" if value < 120 else f"{value / 60:.3g} min"
    if unit == "bytes":
        for name, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{value / size:.3g} {name}"
        return f"{value:.0f} bytes"
    number = f"{value:,}" if isinstance(value, int) else f"{value:.3g}"
    return f"{number} {_SINGULAR.get(unit, unit) if value == 1 else unit}".strip()


def _fallback(key: str, value: Any) -> tuple[str, str]:
    """A label and text for a result no :class:`KeyResult` names, inferred from the key's name."""
    label = key.replace("_", " ")
    if key.endswith("seconds"):
        unit = "s"
    elif key.endswith("_bytes"):
        unit = "bytes"
    elif key.endswith("_mib"):
        unit = "MiB"
    elif ("accuracy" in key or key.endswith("_share")) and isinstance(value, float) and 0 <= value <= 1:
        unit = "%"
    else:
        unit = ""
    return label, format_value(value, unit)


def key_results(results: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The labelled key results of one notebook, and every other scalar result labelled from its key."""
    rows, used = [], set(META_KEYS)
    for spec in KEY_RESULTS:
        values = [lookup(results, k) for k in spec.keys]
        if all(v is not None and not isinstance(v, (dict, list)) for v in values) and spec.label not in dict(rows):
            rows.append((spec.label, spec.sep.join(format_value(v, spec.unit) for v in values)))
            used.update(k.split(".")[0] for k in spec.keys)
    others = [_fallback(k, v) for k, v in results.items()
              if k not in used and isinstance(v, (int, float, bool, str)) and len(str(v)) <= 80]
    return rows, others


def headline(run: NotebookRun) -> str:
    """The notebook's first key result in one phrase, for the summary table."""
    if not run.ok:
        last = (run.error or "").strip().splitlines()[-1:] or ["failed"]
        return last[0][:100]
    rows, _ = key_results(run.results)
    return f"{rows[0][0]}: {rows[0][1]}" if rows else "no results.json"


# --------------------------------------------------------------------------------------------- reports
def summary_rows(runs: list[NotebookRun]) -> list[tuple[str, str, str, str]]:
    """(notebook, status, minutes, key result) per run."""
    return [(run.name, "ok" if run.ok else "FAILED", f"{run.seconds / 60:.1f}", headline(run)) for run in runs]


def summary_table(runs: list[NotebookRun]) -> str:
    """The plain-text table printed at the end of ``make course``."""
    header = ("notebook", "status", "minutes", "key result")
    rows = [header, *summary_rows(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    total = sum(run.seconds for run in runs) / 60
    lines.append(f"{len(runs)} notebook{'s' if len(runs) != 1 else ''}, {sum(not r.ok for r in runs)} failed, "
                 f"{total:.1f} minutes in all")
    speed = machine_speed(runs)
    if speed:
        lines.append(speed)
    return "\n".join(lines)


def machine_speed(runs: list[NotebookRun]) -> str | None:
    """The machine's measured fp32 matmul speed over the notebooks (each measures it as it starts): the reference
    that says what the minutes above mean elsewhere. A spread says the machine was busy part of the time."""
    speeds = sorted(r.results["matmul_gflops"] for r in runs if r.results.get("matmul_gflops"))
    if not speeds:
        return None
    median = speeds[len(speeds) // 2]
    spread = f" (lowest {speeds[0]:.0f}, highest {speeds[-1]:.0f})" if len(speeds) > 1 else ""
    return f"machine speed: {median:.0f} GFLOP/s fp32 matmul, median of {len(speeds)} notebook starts{spread}"


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


AUDIO_DATA = re.compile(r"data:audio/(wav|x-wav|mpeg|ogg);base64,([A-Za-z0-9+/=\s]+)")  # IPython's Audio player


def extract_audio(executed: Path, folder: Path) -> list[Path]:
    """Write the sound of every audio player in an executed notebook to ``folder``; return the paths (notebook 13)."""
    nb = json.loads(executed.read_text())
    paths: list[Path] = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            markup = output.get("data", {}).get("text/html", "")
            for kind, data in AUDIO_DATA.findall(markup if isinstance(markup, str) else "".join(markup)):
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"audio-{len(paths) + 1:02d}.{ {'x-wav': 'wav', 'mpeg': 'mp3'}.get(kind, kind)}"
                path.write_bytes(base64.b64decode("".join(data.split())))
                paths.append(path)
    return paths


def notebook_to_html(executed: Path) -> Path | None:
    """Render an executed notebook to HTML next to it (nbconvert), or None if that fails."""
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
    except Exception as exc:  # noqa: BLE001 (an index without HTML pages is still useful)
        print(f"[aigc.course] could not render {executed.name} to HTML: {exc}")
        return None
    path = executed.with_suffix(".html")
    path.write_text(body, encoding="utf-8")
    return path


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None, cls: str = "",
           anchors: bool = False) -> str:
    """An HTML table; with ``anchors`` the first cell links to the section ``#<first cell>``."""
    esc = html.escape
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    first = (lambda c: f"<a href='#{esc(c)}'>{esc(c)}</a>") if anchors else esc
    body = "".join("<tr>" + "".join(f"<td>{first(c) if i == 0 else esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table class='{cls}'>{head}{body}</table>"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.6em 0}td,th{border-bottom:1px solid #ddd;padding:4px 10px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}.summary td:nth-child(3){text-align:right}"
    ".results td:first-child{color:#555}img{max-height:260px;margin:4px;border:1px solid #ddd}"
    ".fail{color:#b00;font-weight:bold}.ok{color:#070}pre{background:#f6f6f6;padding:6px;overflow-x:auto}"
    "details{margin:.4em 0}summary{cursor:pointer;color:#555}"
)


def write_index(runs: list[NotebookRun], out_dir: Path, profile: str) -> Path:
    """Write ``index.html``: the summary table, then per notebook its key results in words, pictures and sounds."""
    esc = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>AIGC from zero to practice: executed course</title>",
        f"<style>{_STYLE}</style>",
        (f"<h1>AIGC from zero to practice</h1><p>Executed headless, profile <b>{esc(profile)}</b>, "
         f"{time.strftime('%Y-%m-%d %H:%M')}.</p>"),
        "<h2>Summary</h2>",
        _table(summary_rows(runs), ("notebook", "status", "minutes", "key result"), "summary", anchors=True),
        f"<p>{esc(machine_speed(runs) or '')}</p>",
    ]
    for run in runs:
        status = "<span class='ok'>ok</span>" if run.ok else "<span class='fail'>FAILED</span>"
        page = run.executed.with_suffix(".html")
        link = f"<a href='{page.name}'>{esc(run.name)}</a>" if page.is_file() else esc(run.name)
        where = ", ".join(f"{k} {run.results[k]}" for k in ("profile", "device") if k in run.results)
        if run.results.get("matmul_gflops"):
            where += f" at {run.results['matmul_gflops']:.0f} GFLOP/s fp32 matmul"
        parts.append(f"<h2 id='{esc(run.name)}'>{link}</h2><p>{status}, {run.seconds / 60:.1f} min"
                     f"{', ' + esc(where) if where else ''}</p>")
        if run.error:
            parts.append(f"<pre>{esc(run.error[-2000:])}</pre>")
        rows, others = key_results(run.results)
        if rows:
            parts.append(_table(rows, ("key result", "value"), "results"))
        if others:
            more = f"{len(others)} more number{'s' if len(others) != 1 else ''}"
            parts.append(f"<details><summary>{more}</summary>{_table(others, None, 'results')}"
                         "</details>")
        for image in extract_images(run.executed, out_dir / run.name / "images") if run.executed.is_file() else []:
            parts.append(f"<img src='{image.relative_to(out_dir).as_posix()}'>")
        for sound in extract_audio(run.executed, out_dir / run.name / "audio") if run.executed.is_file() else []:
            parts.append(f"<audio controls preload='none' src='{sound.relative_to(out_dir).as_posix()}'></audio>")
    index = out_dir / "index.html"
    atomic_write(index, "\n".join(parts))
    return index


def build_course(out_dir: Path, profile: str = "auto", only: list[str] | None = None,
                 stream: TextIO = sys.stdout) -> list[NotebookRun]:
    """Execute every chapter notebook (or those whose name starts with one of ``only``) and write the index."""
    notebooks = select_notebooks(only)
    profile_name = resolve_profile(profile).name  # what the notebooks will resolve "auto" to, for the ETA
    timings = load_timings(out_dir)
    runs = []
    for i, notebook in enumerate(notebooks, 1):
        estimate, source = estimate_seconds(notebook, profile_name, timings)
        print(f"[aigc.course] {i}/{len(notebooks)} {notebook.name} (profile {profile_name})", file=stream, flush=True)
        with Progress(notebook.stem, count_code_cells(notebook), estimate, source, stream) as progress:
            run = execute_notebook(notebook, out_dir, profile, progress=progress)
        print(f"[aigc.course]   {'ok' if run.ok else 'FAILED'} in {minutes(run.seconds)}"
              f"{'  ' + headline(run) if run.ok else ''}", file=stream, flush=True)
        if run.ok:
            record_timing(out_dir, run.name, profile_name, run.seconds)
        if run.executed.is_file():
            print(f"[aigc.course]   rendering {run.executed.with_suffix('.html').name}", file=stream, flush=True)
            notebook_to_html(run.executed)
        runs.append(run)
    index = write_index(runs, out_dir, profile_name)
    print("\n" + summary_table(runs), file=stream)
    print(f"[aigc.course] wrote {index}", file=stream, flush=True)
    return runs
