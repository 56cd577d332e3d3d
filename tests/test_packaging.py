"""pyproject.toml and environment.yml list the same packages with ranges; CI calls the README's command."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {"torch", "torchvision", "transformers", "diffusers", "accelerate", "peft", "matplotlib",
            "jupyterlab", "papermill", "nbval", "tqdm", "scikit-learn"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_name(r): r for r in reqs}


def _environment() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {_name(r): r for r in pip if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert _environment() == _pyproject()


def test_required_packages_are_declared_with_ranges_not_pins():
    deps = _pyproject()
    assert REQUIRED <= set(deps), REQUIRED - set(deps)
    for name, requirement in deps.items():
        assert ">=" in requirement and "==" not in requirement, f"{requirement}: use a range, never a pin"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make course" in readme


def test_python_floor_is_3_10():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
