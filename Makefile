# dlcourse: the two commands of the README, and a few more for course authors.
#
#   make lab         set up .venv if needed, check the machine, open the course in JupyterLab
#   make test        set up .venv if needed, run the whole test suite (lint, unit tests, strict nbval)
#
#   make test-fast   unit tests only, without the slow ones and without nbval
#   make regenerate  re-execute notebooks in place under the pinned CI settings (NB=notebooks/00_welcome.ipynb for one)
#   make docs        rewrite docs/course-map.md and docs/glossary.md from dlcourse/course.py
#   make bench       run the benchmarks (ratios against PyTorch's own, measured in the same run)
#   make doctor      check this machine for the course
#   make format      ruff format + ruff check --fix (code and notebooks)
#   make clean       remove .venv and caches
#
# Variables: PYTHON (interpreter that creates .venv, default python3),
# TORCH (a pip requirement installed first, e.g. TORCH="torch==2.13.0", or a CPU-only
# build: TORCH="torch --index-url https://download.pytorch.org/whl/cpu"),
# PYTEST_ARGS (extra pytest arguments).

PYTHON ?= python3
VENV ?= .venv
TORCH ?=
PYTEST_ARGS ?=
NB ?=

BIN := $(VENV)/bin
PY := $(BIN)/python
# JupyterLab refuses to start as root (containers, cloud VMs) unless told it may.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: help lab test test-fast lint format regenerate docs bench doctor clean

help:
	@sed -n '2,18p' Makefile | sed 's/^# \{0,1\}//'

lab: $(VENV)/.installed
	@$(BIN)/dlcourse doctor || echo "(the course opens anyway; fix the items above when you can)"
	$(BIN)/jupyter lab $(LAB_FLAGS) notebooks/00_welcome.ipynb

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" tests $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

regenerate: $(VENV)/.installed
	$(BIN)/dlcourse regenerate $(NB)

docs: $(VENV)/.installed
	$(PY) -c "import dlcourse.course as c; c.write_docs()"

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

doctor: $(VENV)/.installed
	$(BIN)/dlcourse doctor

# The virtual environment: created once, then updated whenever pyproject.toml changes.
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "dlcourse needs Python 3.10 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)."; \
	  echo "Install a newer Python, then run e.g.: make $(MAKECMDGOALS) PYTHON=python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(PY) -m pip install $(TORCH))
	@touch $@

# One environment serves both the course and its tests (the test extra is small).
$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(PY) -m pip install --quiet -e '.[lab,test]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
