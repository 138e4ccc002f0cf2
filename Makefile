# The two commands: `make demo` (hello world, no Consul) and `make test` (everything CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint consul bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[uvloop,dev]"
	touch $@

demo: setup
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
