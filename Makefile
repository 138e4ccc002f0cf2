# The two commands: `make demo` (hello world, no Consul) and `make test` (everything CI runs).
# PYTHON and VENV choose the interpreter, e.g. `make test PYTHON=python3.13 VENV=.venv-3.13`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-demo demo test test-core lint consul bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs the core and uvloop only: a few seconds and a small virtualenv.
setup-demo: $(VENV)/.installed-demo
$(VENV)/.installed-demo: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[uvloop]"
	touch $@

# Everything the tests, linters and benchmarks use.
setup: $(VENV)/.installed-dev
$(VENV)/.installed-dev: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[uvloop,dev]"
	touch $@ $(VENV)/.installed-demo

demo: setup-demo
	$(BIN)/python scripts/demo.py

consul:
	bash scripts/install-consul.sh

bench: setup consul
	$(BIN)/python benchmarks/suite.py

lint: setup
	$(BIN)/ruff check gorpc plugins tests examples benchmarks scripts
	$(BIN)/mypy

test: setup consul lint
	$(BIN)/python -m pytest

# The core's tests (no Consul agent needed), for another interpreter in CI.
test-core: setup
	$(BIN)/python -m pytest -m "not consul"

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
