"""The Colab setup cell: one cell, identical in every notebook, generated from pyproject.toml; never torch."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
import types

import nbformat
import pytest

from tools import colab_setup
from tools.colab_setup import NEVER_INSTALL, REPO, import_name, requirement_name, setup_cell_source

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_notebook_opens_with_the_generated_setup_cell():
    expected = setup_cell_source()
    paths = colab_setup.notebooks()
    assert len(paths) >= 11
    for path in paths:
        cell = nbformat.read(path, as_version=4).cells[1]
        assert cell.cell_type == "code" and cell.source == expected, (
            f"{path.name}: setup cell differs; run `python tools/colab_setup.py`")
    release = f'COURSE_REPO, COURSE_REF = "{colab_setup.COURSE_REPO}", "v{PROJECT["version"]}"'
    assert release in expected  # Colab installs the release of aigc_lib this repository is at


def test_colab_extra_uses_the_same_ranges_as_the_dependencies_and_never_torch():
    core = {requirement_name(r): r for r in PROJECT["dependencies"]}
    for requirement in PROJECT["optional-dependencies"]["colab"]:
        name = requirement_name(requirement)
        assert name not in NEVER_INSTALL, requirement
        assert core.get(name) == requirement, f"{requirement}: give it the range of dependencies ({core.get(name)})"
    bad = {**PROJECT, "optional-dependencies": {"colab": ["torch>=2.4", "peft>=0.12"]}}
    with pytest.raises(ValueError, match="never install"):
        setup_cell_source(bad)


def _run_cell(monkeypatch, importable: set[str], tmp_path, colab: bool = True) -> list[list[str]]:
    """Execute the setup cell (with a fake ``google.colab`` module); return the commands it would run."""
    commands: list[list[str]] = []
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        top = name.split(".")[0]
        return real_find_spec(name, *args, **kwargs) if top in importable else None

    if colab:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(list(command)))
    source = setup_cell_source().replace('"/content/aigc-course"', repr(str(tmp_path / "aigc-course")))
    exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})  # noqa: S102 (the cell under test)
    return commands


def test_on_a_stock_colab_the_cell_installs_only_what_is_missing(monkeypatch, tmp_path):
    needs = colab_setup.colab_needs()
    # a stock Colab: torch, torchvision, transformers, accelerate, sklearn, tqdm... but not the rest
    stock = {"torch", "torchvision", "transformers", "accelerate", "safetensors", "sklearn", "tqdm", "numpy"}
    commands = _run_cell(monkeypatch, stock, tmp_path)
    clone, course, extras = commands
    assert clone[:2] == ["git", "clone"] and colab_setup.COURSE_REPO in clone and f"v{PROJECT['version']}" in clone
    assert course[-3:] == ["--no-deps", "-e", str(tmp_path / "aigc-course")]  # the course itself pulls no torch
    installed = {import_name(r) for r in extras[extras.index("-q") + 1:]}
    assert installed == set(needs) - stock, installed
    for command in commands:
        named = {requirement_name(word) for word in command if not word.startswith("-")}
        assert not named & NEVER_INSTALL, command
        assert not {import_name(word) for word in command[4:]} & stock, command  # nothing already importable


def test_when_everything_is_importable_the_cell_installs_nothing(monkeypatch, tmp_path):
    everything = {*colab_setup.colab_needs(), "aigc_lib", "torch", "torchvision"}
    assert _run_cell(monkeypatch, everything, tmp_path) == []


def test_outside_colab_the_cell_does_nothing(monkeypatch, tmp_path):
    assert "google.colab" not in sys.modules
    assert _run_cell(monkeypatch, set(), tmp_path, colab=False) == []
