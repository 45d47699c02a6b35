# dlcourse: the two commands of the README, and a few more for course authors.
#
#   make lab         set up .venv if needed, check the machine, open your copies of the notebooks (work/)
#                    make lab LANG=ko: the Korean edition (한국어), your copies in work/ko/, JupyterLab in Korean
#   make test        set up .venv if needed, run the whole test suite (lint, unit tests, strict nbval)
#
#   make lab-solutions  open the solution notebooks (notebooks/) in JupyterLab, for instructors and authors
#   make hub         a JupyterHub for one trusted room on this machine (HUB_PORT=8000; docs/hub.md)
#   make test-fast   unit tests only, without the slow ones and without nbval
#   make test-browser  every notebook run in JupyterLab in a real Chromium, and the website checked
#   make site        the course website as a learner sees it (no solutions) into build/site/;
#                    make site-instructor: with the solutions, into build/site-instructor/
#   make regenerate  re-execute notebooks in place under the pinned CI settings (NB=notebooks/00_welcome.ipynb for one)
#   make robustness  run copies of the notebooks with 1/2/4 threads, seeds 1-4 (and CUDA): do the claims hold?
#   make docs        rewrite docs/course-map.md and docs/glossary.md from dlcourse/course.py
#   make bench       run the benchmarks (ratios against PyTorch's own, measured in the same run)
#   make doctor      check this machine for the course
#   make format      ruff format + ruff check --fix (code and notebooks)
#   make lock        re-resolve constraints.txt (the exact versions installed) with uv
#   make clean       remove .venv and caches (never work/, which holds your notebooks)
#
# Variables: PYTHON (interpreter that creates .venv, default python3),
# TORCH (a pip requirement installed first, e.g. a CPU-only build:
# TORCH="torch --index-url https://download.pytorch.org/whl/cpu"),
# CONSTRAINTS (the lock file pip installs from, default constraints.txt; CONSTRAINTS= installs
# the newest releases pyproject.toml allows), PYTEST_ARGS (extra pytest arguments).

PYTHON ?= python3
VENV ?= .venv
TORCH ?=
CONSTRAINTS ?= constraints.txt
PYTEST_ARGS ?=
NB ?=
# The torch release the stored notebook outputs were made with; `make lock` pins it.
LOCK_TORCH ?= torch==2.13.0

BIN := $(VENV)/bin
PY := $(BIN)/python
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# Extra arguments for JupyterLab, e.g. LAB_FLAGS="--no-browser --port 8899".
LAB_FLAGS ?=

.PHONY: help lab lab-solutions hub test test-fast test-browser site site-instructor lint format regenerate robustness docs bench doctor lock clean

help:
	@sed -n '2,26p' Makefile | sed 's/^# \{0,1\}//'

# Your own copies of the notebooks, in work/ (made once, never overwritten; `dlcourse reset NN`
# gives a fresh one). notebooks/ holds the solutions, which JupyterLab opens read-only here.
# The course's language: only a LANG given on make's command line counts (`make lab LANG=ko`);
# the LANG of your environment is your locale, not a choice of edition. That LANG=ko is no
# locale, so the commands run with C.UTF-8 instead. Without it: $$DLCOURSE_LANG, else English.
COURSE_LANG := $(if $(filter command line,$(origin LANG)),$(LANG))
WITH_LANG := $(if $(COURSE_LANG),env LANG=C.UTF-8 )
LANG_FLAG := $(if $(COURSE_LANG),--lang $(COURSE_LANG))

lab: $(VENV)/.installed-lab
	@$(WITH_LANG)$(BIN)/dlcourse doctor || echo "(the course opens anyway; fix the items above when you can)"
	$(WITH_LANG)$(BIN)/dlcourse lab $(LANG_FLAG) $(LAB_FLAGS)

lab-solutions: $(VENV)/.installed-lab
	$(BIN)/dlcourse lab --solutions $(LAB_FLAGS)

# A JupyterHub for a workshop or a demo, on this machine (dlcourse/machinery/hub.py, docs/hub.md):
# learners on the room's network open the address it prints, choose a name and type the room's
# password; each gets their own JupyterLab on their own git clone of this course folder (what is
# committed). The instructor's account (HUB_ADMIN, default instructor) is the hub's admin. No
# isolation between learners: one trusted room only. The proxy, configurable-http-proxy, comes
# from npm (Node.js 20+), pinned by a lock file, into build/hub/node/; the hub's state and the
# learners' homes stay in build/hub/. Passwords: HUB_PASSWORD (the room's, 8+ characters) and
# HUB_ADMIN_PASSWORD (32+), else those of the last start, else made and printed (kept in
# build/hub/hub.json). HUB_FLAGS: e.g. "--ip 127.0.0.1" (this machine only), "--idle-minutes 60".
# make hub LANG=ko: the Korean edition for every learner (copies in work/ko/, JupyterLab in Korean).
HUB_PORT ?= 8000
HUB_ADMIN ?= instructor
HUB_FLAGS ?=

hub: $(VENV)/.installed-hub
	$(PY) -m dlcourse.machinery.hub --install-proxy
	$(WITH_LANG)$(PY) -m dlcourse.machinery.hub --port $(HUB_PORT) --instructor $(HUB_ADMIN) $(LANG_FLAG) $(HUB_FLAGS)

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" tests $(PYTEST_ARGS)

# The browser tests alone (make test runs them too, when Chromium is there). Screenshots of every
# notebook and of the website go to build/browser/. Needs Chromium and a CJK font (see below).
test-browser: $(VENV)/.installed
	DLCOURSE_REQUIRE_BROWSER=1 $(PY) -m pytest -m browser tests/test_browser.py tests/test_site.py -v $(PYTEST_ARGS)

# The course website, from the stored notebooks (nothing is run): open build/site/index.html.
# The public edition shows the learner's copies (the exercises left to write, no solution on a
# page or in a download); the instructor edition, the solution notebooks. See docs/site/build.py.
site: $(VENV)/.installed
	$(PY) docs/site/build.py

site-instructor: $(VENV)/.installed
	$(PY) docs/site/build.py --instructor

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

regenerate: $(VENV)/.installed
	$(BIN)/dlcourse regenerate $(NB)

robustness: $(VENV)/.installed
	$(BIN)/dlcourse robustness $(NB)

docs: $(VENV)/.installed
	$(PY) -c "import dlcourse.course as c; c.write_docs()"

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

doctor: $(VENV)/.installed-lab
	$(BIN)/dlcourse doctor

# The virtual environment: created once, then updated whenever pyproject.toml or the lock changes.
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "dlcourse needs Python 3.10 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)."; \
	  echo "Install a newer Python, then run e.g.: make $(MAKECMDGOALS) PYTHON=python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(PY) -m pip install $(PIP_CONSTRAINTS) $(TORCH))
	@touch $@

# A learner's environment (make lab): the course and JupyterLab, the lab extra, and nothing
# else; the course's authors' (make test and the rest) adds the test, site and browser extras
# (pytest, nbval, ruff, Sphinx, Playwright) to the same .venv. Both at the exact versions of
# the lock, so that every machine reproduces the stored outputs.
$(VENV)/.installed-lab: pyproject.toml $(CONSTRAINTS) $(VENV)/.created
	$(PY) -m pip install --quiet $(PIP_CONSTRAINTS) -e '.[lab]'
	@touch $@

$(VENV)/.installed-hub: pyproject.toml $(CONSTRAINTS) $(VENV)/.created
	$(PY) -m pip install --quiet $(PIP_CONSTRAINTS) -e '.[lab,hub]'
	@touch $@

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) $(VENV)/.created
	$(PY) -m pip install --quiet $(PIP_CONSTRAINTS) -e '.[lab,hub,test,site,browser]'
	@touch $@

# The lock: every package `make lab` and `make test` install, pinned for every platform and
# Python >= 3.10, resolved by uv from pyproject.toml's lower bounds plus LOCK_TORCH.
lock: $(VENV)/.created
	$(PY) -m pip install --quiet uv
	printf '%s\n' '$(LOCK_TORCH)' | $(BIN)/uv pip compile pyproject.toml - --extra lab \
	  --extra hub --extra test --extra site --extra browser --universal --python-version 3.10 --custom-compile-command "make lock" \
	  --quiet -o constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
