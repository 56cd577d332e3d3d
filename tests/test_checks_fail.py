"""Every notebook check can fail: a control run that learns nothing must fail its chapter's checks.

Each notebook runs in the smoke profile with the papermill parameter ``LEARN=False``: every learning rate of a
model the chapter trains is multiplied by 0, so the same code runs and nothing is learned (measuring instruments,
such as the judges, still train). The run itself must succeed, and the chapter's entry in ``CHECKS`` of
``test_notebooks.py`` must raise AssertionError, because each chapter compares a learned result with its untrained
or trivial baseline.
"""
from __future__ import annotations

import pytest
from test_notebooks import (  # tests/ is on sys.path (pytest inserts the rootdir of each test file)
    CHECKS,
    SmokeRuns,
)

from aigc_lib.course import NOTEBOOKS, course_notebooks

CONTROL_NOTEBOOKS = course_notebooks() + [NOTEBOOKS / "NN_chapter_template.ipynb"]  # the template trains too


@pytest.fixture(scope="session")
def control_runs(tmp_path_factory):
    """Execute each notebook once in smoke with LEARN=False (papermill), keyed by name, when a test first asks."""
    runs = SmokeRuns(tmp_path_factory.mktemp("learn-false"), parameters={"LEARN": False})
    yield runs
    runs.write_durations("build/notebook-checks-fail-seconds.json", "LEARN=False smoke run")


@pytest.mark.notebooks
def test_every_notebook_has_a_learn_parameter():
    for path in CONTROL_NOTEBOOKS:
        assert '"LEARN = True' in path.read_text(), f"{path.name}: the parameters cell needs LEARN = True"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", [p.stem for p in CONTROL_NOTEBOOKS])
def test_checks_fail_when_nothing_learns(control_runs, name):
    run = control_runs[name]
    assert run.ok, f"{name} failed under papermill with LEARN=False:\n{run.error}"
    assert run.results.get("profile") == "smoke" and run.results.get("notebook") == name
    with pytest.raises(AssertionError):  # a check that holds without learning checks nothing
        CHECKS[name](run.results)
