"""Print pyproject.toml's floors as exact pins (`torch>=2.4` -> `torch==2.4`), for `make test-lowest`.

Used as a constraints file next to uv's `--resolution lowest-direct`: a floor that cannot be installed (it needs a
newer Python, or it conflicts with another floor) then fails the resolution with uv's explanation, instead of
being silently replaced by a newer version. Also checks that it runs on the lowest Python `requires-python` allows.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FLOOR = re.compile(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(;.*)?$")


def floors(requirements: list[str]) -> list[str]:
    """`name>=X` -> `name==X` for every requirement; anything else is an error (ranges only, see pyproject)."""
    pins = []
    for requirement in requirements:
        if requirement.startswith("aigc-course"):  # an extra of this project (dev = test + ruff)
            continue
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} has no plain '>=' floor; write it as 'name>=X'")
        name, _, version, marker = match.groups()
        pins.append(f"{name}=={version}{' ' + marker if marker else ''}")
    return pins


def main() -> int:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    python = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    if python is None:
        raise SystemExit(f"requires-python {project['requires-python']!r}: expected '>=3.X'")
    lowest = (int(python.group(1)), int(python.group(2)))
    if sys.version_info[:2] != lowest:
        raise SystemExit(f"the lowest versions are tested on the lowest Python pyproject allows, {lowest[0]}."
                         f"{lowest[1]}; this is {sys.version.split()[0]}: pass LOWEST_PYTHON=python"
                         f"{lowest[0]}.{lowest[1]} to make")
    print("\n".join(floors(project["dependencies"] + project["optional-dependencies"]["test"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
