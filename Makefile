# The two commands a new user needs: `make demo` and `make test`. Both create .venv and
# install what they need; everything else here is a helper for developers.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned for the test environment only (the package itself asks for a range):
# 2.13.0 installs a CPU build from local disk, any other version pulls a CUDA build.
TEST_PINS ?= torch==2.13.0

.PHONY: demo test lint typecheck importcheck check clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.core-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]' $(TEST_PINS)
	touch $@ $(VENV)/.core-installed

demo: $(VENV)/.core-installed
	$(VENV)/bin/forgeml demo --workdir demo

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check src tests bench examples docs deploy
	$(VENV)/bin/ruff format --check src tests bench examples docs deploy

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy

importcheck: $(VENV)/.dev-installed
	$(VENV)/bin/lint-imports

test: $(VENV)/.dev-installed lint typecheck importcheck
	$(PY) -m pytest -n 2 --dist loadgroup src tests

bench: $(VENV)/.dev-installed
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo
