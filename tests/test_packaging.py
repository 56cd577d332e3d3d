"""pyproject.toml and environment.yml agree (packages, ranges, Python); the Python floor is what the code needs;
CI calls the README's command; `make test-lowest` exists and tests the floors."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from tools.floors import floors

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {"torch", "torchvision", "transformers", "diffusers", "accelerate", "peft", "matplotlib",
            "jupyterlab", "papermill", "nbval", "tqdm", "scikit-learn"}
CODE_DIRS = ("aigc_lib", "tests", "tools", "bench")
# Standard-library names newer than some Python this course might claim to support: (major, minor) they need.
# Extend it when the code starts using something newer; the syntax itself is checked with ast's feature_version.
NEWER_STDLIB = {
    "tomllib": (3, 11), "typing.Self": (3, 11), "typing.LiteralString": (3, 11), "typing.Never": (3, 11),
    "typing.assert_never": (3, 11), "typing.reveal_type": (3, 11), "enum.StrEnum": (3, 11),
    "datetime.UTC": (3, 11), "asyncio.TaskGroup": (3, 11), "asyncio.timeout": (3, 11),
    "ExceptionGroup": (3, 11), "BaseExceptionGroup": (3, 11), "hashlib.file_digest": (3, 11),
    "itertools.batched": (3, 12), "typing.override": (3, 12), "pathlib.Path.walk": (3, 12),
    "warnings.deprecated": (3, 13), "copy.replace": (3, 13), "typing.ReadOnly": (3, 13),
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pyproject() -> dict[str, str]:
    project = _project()
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_name(r): r for r in reqs}


def _environment_deps() -> list:
    return yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]


def _environment() -> dict[str, str]:
    pip = next(d["pip"] for d in _environment_deps() if isinstance(d, dict))
    return {_name(r): r for r in pip if not r.startswith("-e")}


def _python_floor() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", _project()["requires-python"])
    assert match, f"requires-python {_project()['requires-python']!r}: write it as '>=3.X'"
    return 3, int(match.group(1))


def _used_names(tree: ast.AST) -> set[str]:
    """Dotted names a module imports or reads: `import tomllib`, `from typing import Self`, `datetime.UTC`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


def _needed_python(files: list[Path]) -> dict[str, tuple[int, int]]:
    """What each feature newer than 3.8 needs, for every use found in ``files``: ``{"tests/x.py: tomllib": (3, 11)}``."""
    needs = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in _used_names(tree) & set(NEWER_STDLIB):
            needs[f"{path.relative_to(REPO)}: {name}"] = NEWER_STDLIB[name]
    return needs


def _code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (REPO / d).rglob("*.py"))


def test_environment_yml_matches_pyproject():
    assert _environment() == _pyproject()


def test_required_packages_are_declared_with_ranges_not_pins():
    deps = _pyproject()
    assert REQUIRED <= set(deps), REQUIRED - set(deps)
    for requirement in deps.values():
        assert ">=" in requirement and "==" not in requirement, f"{requirement}: use a range, never a pin"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make course" in readme


def test_python_floor_covers_what_the_code_uses():
    floor = _python_floor()
    needs = _needed_python(_code_files())
    too_new = {use: need for use, need in needs.items() if need > floor}
    assert not too_new, f"requires-python >={floor[0]}.{floor[1]} but the code uses {too_new}"
    for path in _code_files():  # new syntax (except*, `type X = ...`, generic `def f[T]`) as well
        ast.parse(path.read_text(), filename=str(path), feature_version=floor)


def test_python_floor_is_not_lower_than_the_tests_need():
    # tomllib (3.11) reads pyproject.toml in the tests and tools/colab_setup.py: 3.10 would fail at import.
    assert _python_floor() >= (3, 11)
    assert sys.version_info[:2] >= _python_floor()


def test_feature_scan_finds_a_newer_import():
    # the scan must see what it guards against, or the floor test above passes for nothing
    tree = ast.parse("import tomllib\nfrom typing import Self\nimport datetime\nx = datetime.UTC\n")
    assert {"tomllib", "typing.Self", "datetime.UTC"} <= _used_names(tree)
    with pytest.raises(SyntaxError):
        ast.parse("type Pair = tuple[int, int]\n", feature_version=(3, 11))


def test_conda_python_agrees_with_requires_python():
    pythons = [d for d in _environment_deps() if isinstance(d, str) and _name(d) == "python"]
    assert len(pythons) == 1, "environment.yml must name python once"
    floor = _python_floor()
    spec = pythons[0].split("python", 1)[1]
    lower = re.search(r">=\s*3\.(\d+)", spec)
    upper = re.search(r"<\s*3\.(\d+)", spec)
    assert lower and (3, int(lower.group(1))) == floor, f"conda {pythons[0]!r} vs requires-python {floor}"
    # conda takes the newest Python it can; a cap keeps it on Pythons every dependency has wheels for
    assert upper and (3, int(upper.group(1))) > floor, f"conda {pythons[0]!r} needs an upper bound above the floor"


def test_make_test_lowest_tests_the_floors_on_the_lowest_python():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test-lowest:", makefile, re.MULTILINE), "Makefile has no test-lowest target"
    floor = _python_floor()
    assert re.search(rf"^LOWEST_PYTHON\s*\?=\s*python{floor[0]}\.{floor[1]}\s*$", makefile, re.MULTILINE)
    assert "tools/floors.py" in makefile and "--resolution lowest-direct" in makefile
    recipe = makefile.split("\ntest-lowest:", 1)[1].split("\n\n", 1)[0]
    assert '-m pytest tests -m "not notebooks"' in recipe and "-k \"$(LOWEST_SMOKE)\"" in recipe
    smoke = re.search(r"^LOWEST_SMOKE\s*:=(.*)$", makefile, re.MULTILINE)
    assert smoke and "00_setup_and_tour" in smoke.group(1) and "08_stable_diffusion_anatomy" in smoke.group(1)


def test_floors_become_exact_pins():
    assert floors(["torch>=2.4", "pyyaml>=6.0.1", "aigc-course[test]"]) == ["torch==2.4", "pyyaml==6.0.1"]
    with pytest.raises(SystemExit, match="no plain '>=' floor"):
        floors(["torch~=2.4"])
    assert floors(_project()["dependencies"])  # every declared dependency has a floor the tool can pin


def test_every_subpackage_is_in_the_wheel():
    # a plain `pip install .` (not -e) ships only the packages setuptools is told about: diffusion/, lm/, metrics/
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "aigc_lib").rglob("__init__.py")}
    assert {"aigc_lib", "aigc_lib.diffusion", "aigc_lib.lm"} <= packages
    missing = {name for name in packages if not any(fnmatch(name, pattern) for pattern in include)}
    assert not missing, f"pyproject.toml [tool.setuptools.packages.find] misses {missing}"
