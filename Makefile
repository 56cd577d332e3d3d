# Two commands for learners and instructors (see README):
#   make course   set up .venv, execute every notebook headless (profile auto) into build/course/
#   make test     set up .venv, run the whole test suite (unit, papermill, nbval, hygiene)
# and `make lab` to open JupyterLab with the course's kernel, `make app` to serve chapter 14's web app locally.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= auto
KERNEL := aigc-course

.PHONY: setup course test unit notebooks lab app browser-deps bench rehearse gpu-check clean test-lowest figures

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. Never pins torch: pip picks a torch that matches torchvision.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (aigc-course)" >/dev/null
	@touch $@

course: $(STAMP)
	$(PY) tools/build_course.py --profile $(PROFILE) --out build/course $(if $(ONLY),--only $(ONLY))

# Unit + papermill (learning on, and off: tests/test_checks_fail.py) + hygiene tests, then nbval on the notebooks
# that store checked outputs (--nbval-lax: only cells marked NBVAL_CHECK_OUTPUT are compared). The papermill runs
# already execute every notebook, so nbval skips the ones with nothing to compare.
TEST_ENV := AIGC_PROFILE=smoke AIGC_HEADLESS=1 AIGC_RUNS_DIR=$(CURDIR)/build/nbval-runs
NBVAL_NOTEBOOKS = $(shell grep -l NBVAL_CHECK_OUTPUT notebooks/*.ipynb)

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests $(NBVAL_NOTEBOOKS) --nbval-lax

unit: $(STAMP)
	$(PY) -m pytest tests -m "not notebooks"

notebooks: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests/test_notebooks.py tests/test_checks_fail.py $(NBVAL_NOTEBOOKS) --nbval-lax

# The LOWEST versions pyproject.toml allows, in their own venv on the lowest Python it allows: every floor pinned
# exactly (tools/floors.py; a floor that cannot be installed fails the resolution with uv's reason), the other
# packages the newest (uv's lowest-direct). Then the unit tests and the smoke runs of notebooks 00 and 08; their
# papermill kernel "python3" is the venv's own Python (jupyter_client runs the kernel with sys.executable).
LOWEST_PYTHON ?= python3.11
LOWEST_VENV   ?= .venv-lowest
LOWEST_PY     := $(LOWEST_VENV)/bin/python
LOWEST_BIN    := $(CURDIR)/$(LOWEST_VENV)/bin
# uv does not read pip's configuration: hand it pip's indexes, find-links and constraints, merged as pip does.
PIP_SETTING    = $(shell $(LOWEST_PYTHON) -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$(1)='\(.*\)'$$/\1/p" | head -n1)
uv_env         = $(if $(call PIP_SETTING,$(1)),$(2)="$(call PIP_SETTING,$(1))")
UV             = UV_INDEX_STRATEGY=unsafe-best-match UV_PYTHON_DOWNLOADS=never $(call uv_env,index-url,UV_DEFAULT_INDEX) \
                 $(call uv_env,extra-index-url,UV_EXTRA_INDEX_URL) $(call uv_env,find-links,UV_FIND_LINKS) \
                 $(call uv_env,constraint,UV_CONSTRAINT) $(LOWEST_BIN)/uv
LOWEST_SMOKE  := smoke_run and (00_setup_and_tour or 08_stable_diffusion_anatomy)

$(LOWEST_VENV)/.installed: pyproject.toml tools/floors.py
	@command -v $(LOWEST_PYTHON) >/dev/null || { echo "test-lowest runs on the lowest Python pyproject.toml allows:" \
	  "install $(LOWEST_PYTHON) or pass LOWEST_PYTHON=/path/to/it" >&2; exit 1; }
	rm -rf $(LOWEST_VENV)
	$(LOWEST_PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_PY) -m pip install --quiet uv
	$(LOWEST_PY) tools/floors.py > $(LOWEST_VENV)/floors.txt
	$(UV) pip compile --quiet pyproject.toml --extra test --resolution lowest-direct \
	  --constraint $(LOWEST_VENV)/floors.txt --python $(LOWEST_PY) --output-file $(LOWEST_VENV)/requirements.txt
	$(UV) pip install --quiet --python $(LOWEST_PY) -r $(LOWEST_VENV)/requirements.txt
	$(UV) pip install --quiet --python $(LOWEST_PY) --no-deps -e .
	@touch $@

test-lowest: $(LOWEST_VENV)/.installed
	@grep -E '^(torch|torchvision|transformers|diffusers|accelerate|peft|numpy)==' $(LOWEST_VENV)/requirements.txt
	PATH=$(LOWEST_BIN):$$PATH $(LOWEST_PY) -m pytest tests -m "not notebooks"
	PATH=$(LOWEST_BIN):$$PATH AIGC_PROFILE=smoke AIGC_HEADLESS=1 AIGC_RUNS_DIR=$(CURDIR)/build/lowest-runs \
	  $(LOWEST_PY) -m pytest tests/test_notebooks.py -m notebooks -k "$(LOWEST_SMOKE)"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Chapter 14's Gradio app (aigc_lib/apps/app.py) on http://127.0.0.1:7860 with the course's own models; `make app
# ONLINE=1` uses real hub models where they can be had (it prints which ran). Ctrl-C stops it.
app: $(STAMP)
	$(PY) -m aigc_lib.apps.app $(if $(ONLINE),--online)

# Headless Chromium, its chromedriver and a CJK font (apt-get; sudo when not root) for tests/test_apps_browser.py
# and chapter 14's Chinese posters; a fast no-op when all are present. .ci/run calls it before `make test`.
browser-deps:
	bash tools/install_system_deps.sh

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

# Architecture figures: redraw notebooks/figures/*.png (tools/figures.py) and embed them as attachments in the
# markdown cells that reference them (![alt](attachment:NAME.png)). FIGURES_FLAGS=--check only reports staleness.
figures: $(STAMP)
	$(PY) tools/figures.py $(FIGURES_FLAGS)

clean:
	rm -rf build notebooks/runs .pytest_cache
