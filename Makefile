# Two commands for learners and instructors (see README):
#   make course   set up .venv, execute every notebook headless (profile auto) into build/course/
#   make test     set up .venv, run the whole test suite (unit, papermill, nbval, hygiene)
# and `make lab` to open JupyterLab with the course's kernel.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= auto
KERNEL := aigc-course

.PHONY: setup course test unit notebooks lab bench rehearse gpu-check clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. Never pins torch: pip picks a torch that matches torchvision.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (aigc-course)" >/dev/null
	@touch $@

course: $(STAMP)
	$(PY) tools/build_course.py --profile $(PROFILE) --out build/course

# Unit + papermill + hygiene tests, then nbval (--nbval-lax: only cells marked NBVAL_CHECK_OUTPUT are compared).
TEST_ENV := AIGC_PROFILE=smoke AIGC_HEADLESS=1 AIGC_RUNS_DIR=$(CURDIR)/build/nbval-runs

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests notebooks --nbval-lax

unit: $(STAMP)
	$(PY) -m pytest tests -m "not notebooks"

notebooks: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests/test_notebooks.py notebooks --nbval-lax

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) -m bench.trainer
	$(PY) -m bench.gan
	$(PY) -m bench.lm
	$(PY) -m bench.diffusion

# Every notebook in the full profile, full sizes, step and sample counts x STEPS_SCALE (tools/rehearse.py).
STEPS_SCALE ?= 0.01
rehearse: $(STAMP)
	AIGC_STEPS_SCALE=$(STEPS_SCALE) $(PY) tools/rehearse.py --scale $(STEPS_SCALE) --out build/rehearse $(REHEARSE_FLAGS)

# On a lent GPU machine (no internet, torch preinstalled, maybe no .venv): benchmarks + a T4-emulated rehearsal
# in about 9 minutes. See bench/README.md for the wheels to bring.
GPU_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_PY) -m bench.gpu_check $(GPU_CHECK_FLAGS)

clean:
	rm -rf build notebooks/runs .pytest_cache
