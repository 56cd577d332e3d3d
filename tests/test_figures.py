"""The architecture figures (tools/figures.py): regenerated, stored, embedded as notebook attachments."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools import figures

NOTEBOOKS = figures.NOTEBOOKS
STORED = figures.FIGURES
CHAPTERS = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def _notebooks() -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(NOTEBOOKS.glob("*.ipynb"))]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures")
    figures.write_figures(out, sorted(figures.FIGURES_BY_NAME))
    return out


def test_regenerated_figures_match_the_stored_ones(regenerated: Path):
    assert sorted(p.name for p in regenerated.glob("*.png")) == sorted(p.name for p in STORED.glob("*.png"))
    for path in sorted(STORED.glob("*.png")):
        if Image.open(path).text.get("Software") == figures.renderer():  # drawn with these very versions
            assert path.read_bytes() == (regenerated / path.name).read_bytes(), \
                f"{path.name} differs from tools/figures.py's drawing: run `make figures`"
            continue
        stored, fresh = _pixels(path.read_bytes()), _pixels((regenerated / path.name).read_bytes())
        assert stored.shape == fresh.shape, f"{path.name}: size changed, run `make figures`"
        diff = np.abs(stored - fresh)
        # another FreeType or matplotlib version moves anti-aliased edges by a few levels; a changed drawing moves
        # more (one changed word in a label of 06_lora_bypass: 0.14% of the pixels by more than 64 levels)
        assert diff.mean() < 1.0 and (diff.max(axis=2) > 64).mean() < 0.001, \
            f"{path.name} differs from tools/figures.py's drawing (mean {diff.mean():.2f}): run `make figures`"


def test_rendering_is_deterministic():
    name = "06_lora_bypass"  # a figure without imports from aigc_lib: fast
    assert figures.render(name) == figures.render(name)


def test_stored_figures_are_small_readable_pngs():
    for path in sorted(STORED.glob("*.png")):
        image = Image.open(path)
        assert image.format == "PNG" and 900 <= image.width <= 1200, (path.name, image.size)
        assert path.stat().st_size < 120_000, f"{path.name}: {path.stat().st_size} bytes"
        assert path.stem in figures.FIGURES_BY_NAME, f"{path.name} has no fig_{path.stem} in tools/figures.py"


def test_every_chapter_has_a_figure():
    for notebook in CHAPTERS:
        number = notebook.name[:2]
        if int(number) <= 9:
            assert list(STORED.glob(f"{number}_*.png")), f"chapter {number} has no figure in notebooks/figures"


def test_attachments_resolve_and_match_the_stored_figures():
    for path, nb in _notebooks():
        for index, name in figures.references(nb):
            figure = STORED / name
            assert figure.exists(), f"{path.name}, cell {index}: attachment:{name} is not in notebooks/figures"
            attached = nb["cells"][index].get("attachments", {}).get(name, {}).get("image/png")
            assert attached is not None, f"{path.name}, cell {index}: {name} is not embedded: run `make figures`"
            assert base64.b64decode(attached) == figure.read_bytes(), \
                f"{path.name}, cell {index}: the embedded {name} is stale: run `make figures`"


def test_every_figure_is_shown_by_a_notebook():
    shown = {name for _, nb in _notebooks() for _, name in figures.references(nb)}
    missing = sorted(p.name for p in STORED.glob("*.png") if p.name not in shown)
    assert not missing, f"figures no notebook references: {missing}"


# ------------------------------------------------------------------------------------ the embedding itself
def _write(path: Path, cells: list[dict]) -> None:
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _markdown(source: str, **extra) -> dict:
    return {"cell_type": "markdown", "id": "a1", "metadata": {}, "source": [source], **extra}


def test_embed_fills_references_once_and_keeps_the_format(tmp_path: Path):
    figs = tmp_path / "figures"
    figs.mkdir()
    png = figures.render("06_lora_bypass")
    (figs / "06_lora_bypass.png").write_bytes(png)
    notebook = tmp_path / "nb.ipynb"
    _write(notebook, [_markdown("LoRA, in one picture (中文):\n\n![LoRA](attachment:06_lora_bypass.png)")])
    assert figures.embed(notebook, figs) == ["06_lora_bypass.png"]
    text = notebook.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert base64.b64decode(nb["cells"][0]["attachments"]["06_lora_bypass.png"]["image/png"]) == png
    assert text == json.dumps(nb, indent=1, ensure_ascii=False) + "\n" and "中文" in text
    mtime = notebook.stat().st_mtime_ns
    assert figures.embed(notebook, figs) == [] and notebook.stat().st_mtime_ns == mtime  # unchanged: not written
    # the reference goes: the attachment goes with it
    nb["cells"][0]["source"] = ["LoRA, no picture"]
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert figures.embed(notebook, figs) == ["06_lora_bypass.png"]
    assert "attachments" not in json.loads(notebook.read_text(encoding="utf-8"))["cells"][0]


def test_embed_check_mode_reports_without_writing(tmp_path: Path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "a.png").write_bytes(figures.render("06_lora_bypass"))
    notebook = tmp_path / "nb.ipynb"
    _write(notebook, [_markdown("![x](attachment:a.png)", attachments={"a.png": {"image/png": "c3RhbGU="}})])
    before = notebook.read_bytes()
    assert figures.embed(notebook, figs, write=False) == ["a.png"]
    assert notebook.read_bytes() == before


def test_a_reference_to_a_missing_figure_is_a_clear_error(tmp_path: Path):
    notebook = tmp_path / "nb.ipynb"
    _write(notebook, [_markdown("![x](attachment:99_nothing.png)")])
    with pytest.raises(FileNotFoundError, match=re.escape("attachment:99_nothing.png")) as error:
        figures.embed(notebook, tmp_path)
    assert "fig_99_nothing" in str(error.value) and "make figures" in str(error.value)
