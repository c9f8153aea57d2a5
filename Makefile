# Every target sets itself up: a virtual env in .venv with the pinned dependencies of requirements/dev.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export UV_CACHE_DIR ?= $(HOME)/.cache/uv

.PHONY: help install test demo lint format typecheck lock emulator clean

help:
	@echo "make demo      run the cleanup example DAG against a seeded emulator and print the summary"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make emulator  serve the emulator on port 8089 with demo jobs"
	@echo "make lock      re-pin requirements/dev.lock from requirements/dev.in"

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(BIN)/uv requirements/dev.lock pyproject.toml
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $@

install: $(STAMP)

lock: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 requirements/dev.in -o requirements/dev.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

emulator: $(STAMP)
	$(BIN)/python -m airflow_provider_ft.emulator --port 8089 --seed demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist .demo
