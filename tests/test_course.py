"""make course: notebook selection, time estimates, live progress, the summary table and the HTML index."""
from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile
import torch
from IPython.display import Audio

from aigc_lib import course, threads
from aigc_lib.course import (
    NotebookRun,
    Progress,
    estimate_seconds,
    execute_notebook,
    extract_audio,
    format_value,
    key_results,
    load_timings,
    record_timing,
    select_notebooks,
    stated_times,
    summary_table,
    write_index,
)

REPO = Path(__file__).resolve().parents[1]


def _notebook(path: Path, first: str, code: list[str]) -> Path:
    """A notebook like a chapter: a markdown cell, then code cells; the first is the tagged parameters cell."""
    cells = [nbformat.v4.new_code_cell(c, metadata={"tags": ["parameters"]} if i == 0 else {})
             for i, c in enumerate(code)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(first), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def chapters(tmp_path):
    for name in ("00_setup", "03_dcgan", "05_gpt2", "NN_chapter_template"):
        _notebook(tmp_path / f"{name}.ipynb", "# x", ["1"])
    return tmp_path


def test_only_selects_chapters_by_prefix(chapters):
    assert [p.stem for p in select_notebooks(["03", "05"], chapters)] == ["03_dcgan", "05_gpt2"]
    assert [p.stem for p in select_notebooks(["3"], chapters)] == ["03_dcgan"]  # "3" means chapter 03
    assert [p.stem for p in select_notebooks(None, chapters)] == ["00_setup", "03_dcgan", "05_gpt2"]  # no template
    with pytest.raises(ValueError, match=r"--only 07: no chapter notebook starts with that; the chapters are 00_setup"):
        select_notebooks(["03", "07"], chapters)


def test_build_course_cli_rejects_an_unknown_chapter(capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_course
    finally:
        sys.path.remove(str(REPO / "tools"))
    with pytest.raises(SystemExit) as exit_:
        build_course.main(["--only", "77", "--out", "unused"])
    assert exit_.value.code == 2 and "--only 77: no chapter notebook" in capsys.readouterr().err


def test_stated_times_read_the_time_line(tmp_path):
    first = ("# 03\n\n**Time:** smoke ≈ 20–45 s on a quiet 2-core CPU (CI; several times longer\nwhen busy) · "
             "quick ≈ 1.5 min on a laptop CPU · full ≈ 2 h on a GPU (estimated).")
    nb = _notebook(tmp_path / "03_x.ipynb", first, ["1"])
    assert stated_times(nb) == {"smoke": 45.0, "quick": 90.0, "full": 7200.0}  # a range counts as its upper end
    assert stated_times(_notebook(tmp_path / "04_x.ipynb", "# no time line", ["1"])) == {}


def test_every_chapter_states_a_quick_time():
    for nb in course.course_notebooks():
        assert "quick" in stated_times(nb), f"{nb.name}: its **Time:** line gives no 'quick ≈ N min'"


def test_a_measured_time_wins_over_the_stated_one(tmp_path):
    nb = _notebook(tmp_path / "03_x.ipynb", "**Time:** smoke ≈ 20 s · quick ≈ 3 min", ["1"])
    assert estimate_seconds(nb, "quick", load_timings(tmp_path)) == (180.0, "the notebook's Time line")
    record_timing(tmp_path, "03_x", "quick", 412.34)
    assert load_timings(tmp_path) == {"03_x": {"quick": 412.3}}
    assert estimate_seconds(nb, "quick", load_timings(tmp_path)) == (412.3, "last run here")
    assert estimate_seconds(nb, "full", load_timings(tmp_path)) == (None, "no estimate")


def test_progress_counts_code_cells_and_estimates_time_left():
    out = io.StringIO()  # not a terminal: one line at the start, then one per `every` seconds
    progress = Progress("03_dcgan", 3, estimate=600.0, source="the notebook's Time line", stream=out, every=3600)
    with progress:
        progress.on_cell_start({"cell_type": "markdown", "source": "# title"}, 0)
        progress.on_cell_start({"cell_type": "code", "source": "x = 1"}, 1)
        progress.on_cell_start({"cell_type": "code", "source": "  "}, 2)  # empty cells are not executed
        progress.on_cell_start({"cell_type": "code", "source": "y = 2"}, 3)
        assert progress.cell == 2
        # a busy machine may stall this thread for seconds: the elapsed and the left add up to the estimate
        match = re.fullmatch(r"03_dcgan  cell 2/3  0:(\d\d) elapsed  ~9:(\d\d) left \(the notebook's Time line: 10:00\)",
                             progress.line())
        assert match and 59 <= int(match[1]) + int(match[2]) <= 60, progress.line()
    assert re.match(r"\[aigc\.course\] 03_dcgan  cell 0/3  0:\d\d elapsed", out.getvalue()), out.getvalue()
    progress.start -= 120  # two minutes in (not a sleep): a fast machine reaches this line within a millisecond
    progress.estimate = 60.0
    assert "1:00 over the estimate" in progress.line(), progress.line()


def test_format_value_words_and_units():
    assert format_value(0.38, "%") == "38 %"
    assert format_value(45.0, "s") == "45 s" and format_value(600.0, "s") == "10 min"
    assert format_value(101_888, "bytes") == "99.5 KiB"
    assert format_value(557.123) == "557" and format_value(1.3712) == "1.37" and format_value(12_000) == "12,000"
    assert format_value(True) == "yes" and format_value(8, "classes") == "8 classes"
    assert format_value(1, "classes") == "1 class"


FAKE = {
    "05_gpt2_finetuning": {
        "notebook": "05_gpt2_finetuning", "profile": "quick", "device": "cpu", "precision": "no", "online": False,
        "seconds": 300.0, "matmul_gflops": 118.4, "ppl_before": 557.2, "ppl_after": 1.3712, "bleu_base": 1.2, "bleu": 31.4,
        "source": "offline base", "steps": 600, "mystery_metric": 0.123456, "peak_gpu_gib": None,
        "decoding": [{"strategy": "greedy", "distinct_2": 0.4}], "scores": {"unseen/base": {"bleu": 1.2}},
    },
    "09_finetuning_diffusion": {
        "notebook": "09_finetuning_diffusion", "profile": "quick", "seconds": 570.0, "matmul_gflops": 61.0,
        "star_before": {"color": 0.5, "shape": 0.0, "position": 0.6, "all": 0.0},
        "star_after": {"color": 0.9, "shape": 0.85, "position": 0.95, "all": 0.824},
        "adapter_bytes": 101_888, "unet_bytes": 4_194_304, "judge_accuracy": 0.97,
    },
}


def test_key_results_are_labelled_in_words_and_units():
    rows, others = key_results(FAKE["05_gpt2_finetuning"])
    assert rows[0] == ("test perplexity, before → after fine-tuning", "557 → 1.37")
    assert ("BLEU on held-out questions: base → fine-tuned", "1.2 → 31.4") in rows
    assert ("training steps", "600 steps") in rows and ("data source", "offline base") in rows
    assert others == [("mystery metric", "0.123")]  # an unknown number is kept, labelled from its key
    rows, _ = key_results(FAKE["09_finetuning_diffusion"])
    assert rows[0] == ("prompts drawn right for the new concept (star), before → after LoRA", "0 % → 82.4 %")
    assert ("adapter vs model file size", "99.5 KiB vs 4 MiB") in rows


def _fake_runs(tmp_path: Path) -> list[NotebookRun]:
    runs = [NotebookRun(name, tmp_path / f"{name}.ipynb", tmp_path / name, r["seconds"], None, r)
            for name, r in FAKE.items()]
    runs.append(NotebookRun("07_diffusion_from_scratch", tmp_path / "07.ipynb", tmp_path / "07", 61.0,
                            "PapermillExecutionError: cell 4 raised ValueError", {}))
    return runs


def test_summary_table_has_one_line_per_notebook(tmp_path):
    lines = summary_table(_fake_runs(tmp_path)).splitlines()
    assert lines[0].split() == ["notebook", "status", "minutes", "key", "result"]
    assert re.match(r"05_gpt2_finetuning +ok +5\.0  test perplexity, before → after fine-tuning: 557 → 1\.37$",
                    lines[2])
    assert re.match(r"07_diffusion_from_scratch +FAILED +1\.0  PapermillExecutionError: cell 4 raised ValueError$",
                    lines[4])
    assert lines[-2] == "3 notebooks, 1 failed, 15.5 minutes in all"
    # the reference figure beside the minutes; the spread shows a notebook ran while the machine was busy
    assert lines[-1] == "machine speed: 118 GFLOP/s fp32 matmul, median of 2 notebook starts (lowest 61, highest 118)"


def test_index_opens_with_the_summary_and_labels_every_result(tmp_path):
    page = write_index(_fake_runs(tmp_path), tmp_path, "quick").read_text(encoding="utf-8")
    summary = page.index("<table class='summary'>")
    assert summary < page.index("<h2 id='05_gpt2_finetuning'>")  # the summary comes before the chapters
    assert "<th>notebook</th><th>status</th><th>minutes</th><th>key result</th>" in page
    assert ("<tr><td><a href='#05_gpt2_finetuning'>05_gpt2_finetuning</a></td><td>ok</td><td>5.0</td>"
            "<td>test perplexity, before → after fine-tuning: 557 → 1.37</td></tr>") in page
    assert "<tr><td>test perplexity, before → after fine-tuning</td><td>557 → 1.37</td></tr>" in page
    assert "<tr><td>mystery metric</td><td>0.123</td></tr>" in page
    assert ("07_diffusion_from_scratch</a></td><td>FAILED</td><td>1.0</td><td>PapermillExecutionError: cell 4 raised "
            "ValueError</td>") in page
    for raw in ('"ppl_before"', "distinct_2", "unseen/base", "{&#x27;", "{\""):  # no JSON dump, nested or flat
        assert raw not in page, raw


def test_kernel_runs_without_the_unencrypted_tcp_warning_and_reports_progress(tmp_path, capfd):
    # ipykernel >= 7 warns on stderr for every kernel that runs over TCP without CurveZMQ keys; we provision keys
    nb = _notebook(tmp_path / "01_tiny.ipynb", "**Time:** smoke ≈ 5 s",
                   ["PROFILE = 'auto'\nRUN_DIR = None", "import os\nx = 6 * 7", "print(x)"])
    out = io.StringIO()
    with Progress("01_tiny", course.count_code_cells(nb), 5.0, "test", out, every=3600) as progress:
        run = execute_notebook(nb, tmp_path / "out", "smoke", progress=progress)
    assert run.ok, run.error
    assert progress.cell == 4  # three code cells and papermill's injected parameters
    assert "42" in json.dumps(nbformat.read(run.executed, as_version=4).cells[-1].outputs)
    assert "without encryption" not in capfd.readouterr().err


def test_thread_choice_counts_free_cores(monkeypatch):
    monkeypatch.delenv("AIGC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose_threads(cores=2, busy=0.0).threads == 2  # a quiet machine: all cores
    assert threads.choose_threads(cores=2, busy=0.5).threads == 1  # one core taken by another process
    assert threads.choose_threads(cores=2, busy=1.0).threads == 1  # never fewer than one
    assert threads.choose_threads(cores=16, busy=0.25).threads == 12
    assert str(threads.choose_threads(cores=2, busy=0.5)) == "1 CPU thread: 1.0 of 2 cores free"


def test_thread_choice_respects_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads(cores=2, busy=0.9).threads == 3
    monkeypatch.setenv("AIGC_THREADS", "2")
    assert str(threads.choose_threads(cores=2, busy=0.9)) == "2 CPU threads: from $AIGC_THREADS"
    monkeypatch.setenv("AIGC_THREADS", "many")
    with pytest.raises(ValueError, match=r"\$AIGC_THREADS='many': give a whole number of threads >= 1"):
        threads.choose_threads()


def test_busy_fraction_reads_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(threads, "PROC_STAT", str(stat))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    samples = iter([  # cpu0 busy all the time, cpu1 idle, cpu2 (not ours) busy; fields: user nice system idle ...
        "cpu  300 0 0 100 0 0 0 0 0 0\ncpu0 100 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0 0 0\ncpu2 200 0 0 0\nintr 1\n",
        "cpu  600 0 0 200 0 0 0 0 0 0\ncpu0 200 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 200 0 0 0 0 0 0\ncpu2 400 0 0 0\nintr 1\n",
    ])
    monkeypatch.setattr(threads.time, "sleep", lambda s: stat.write_text(next(samples)))
    stat.write_text(next(samples))
    assert threads.busy_fraction() == 0.5  # one of our two cores busy; the whole machine was 75 % busy


def test_busy_fraction_is_a_share_and_set_cpu_threads_applies_it(monkeypatch):
    busy = threads.busy_fraction(0.05)
    assert busy is None or 0.0 <= busy <= 1.0
    before = torch.get_num_threads()
    try:
        choice = threads.set_cpu_threads(threads.ThreadChoice(1, 2, "test"))
        assert torch.get_num_threads() == 1 and choice.threads == 1
    finally:
        torch.set_num_threads(before)


def test_index_plays_the_sound_a_notebook_played(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(1600) / 16000).astype(np.float32)  # 0.1 s of A4 at 16 kHz
    picture = {"output_type": "display_data", "metadata": {}, "data": {"image/png": base64.b64encode(b"png").decode()}}
    player = {"output_type": "display_data", "metadata": {}, "data": {"text/html": Audio(tone, rate=16000)._repr_html_(),
                                                                     "text/plain": "<IPython.lib.display.Audio>"}}
    notebook = {"cells": [{"cell_type": "code", "outputs": [picture, player]}], "metadata": {}, "nbformat": 4,
                "nbformat_minor": 5}
    executed = tmp_path / "13_audio.ipynb"
    executed.write_text(json.dumps(notebook))
    [sound] = extract_audio(executed, tmp_path / "audio")
    wave, rate = soundfile.read(sound)
    assert rate == 16000 and len(wave) == 1600
    np.testing.assert_allclose(wave, tone / np.abs(tone).max(), atol=1e-4)  # IPython normalises to full scale
    run = NotebookRun("13_audio", executed, tmp_path / "13_audio", 1.0, None, {"profile": "smoke"})
    page = write_index([run], tmp_path / "site", "smoke").read_text(encoding="utf-8")
    assert "<audio controls preload='none' src='13_audio/audio/audio-01.wav'></audio>" in page
    assert "<img src='13_audio/images/output-01.png'>" in page
