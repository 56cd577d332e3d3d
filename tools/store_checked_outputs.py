"""Refresh the outputs nbval compares: execute notebooks (smoke profile), keep outputs only in cells marked
``# NBVAL_CHECK_OUTPUT``, clear every other output and execution count.
Run it after changing a checked cell or what it prints; commit the result.

    python tools/store_checked_outputs.py notebooks/00_setup_and_tour.ipynb [more.ipynb ...]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat

from aigc_lib.course import execute_notebook


def store_checked_outputs(path: Path) -> int:
    """Execute ``path`` and write it back with only the NBVAL_CHECK_OUTPUT outputs; returns how many were kept."""
    with tempfile.TemporaryDirectory() as tmp:
        run = execute_notebook(path, Path(tmp), profile="smoke")
        if not run.ok:
            raise RuntimeError(f"{path.name} failed; fix it first:\n{run.error}")
        executed = nbformat.read(run.executed, as_version=4)
    original = nbformat.read(path, as_version=4)
    kept = 0
    for cell, done in zip(original.cells, (c for c in executed.cells if "injected-parameters" not in
                                            c.metadata.get("tags", []))):
        if cell.cell_type != "code":
            continue
        checked = "NBVAL_CHECK_OUTPUT" in cell.source
        cell.outputs = [o for o in done.outputs if o.output_type != "display_data"] if checked else []
        cell.execution_count = done.execution_count if checked else None  # nbval skips unnumbered cells
        kept += checked
    nbformat.write(original, path)
    return kept


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: kept the outputs of {store_checked_outputs(Path(arg))} checked cell(s)")
