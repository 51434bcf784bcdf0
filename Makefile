# Developer entry points. Everything runs from the project's own .venv; settings come from the
# environment (see .env.example), and with none set the embedded defaults apply (SQLite, fakes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changed since the last install.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# ruff skips .venv, build/ and the migrations (pyproject.toml) on its own.
RUFF_PATHS := .

.PHONY: help venv run test lint format

help:
	@echo "make venv    create .venv and install the project with its dev tools"
	@echo "make run     migrate, load the catalogue, start gunicorn and the qcluster worker"
	@echo "make test    run the tests (SQLite unless DATABASE_URL is set; PYTEST_ARGS passes through)"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format  ruff format and ruff check --fix"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: venv
	scripts/dev-run.sh

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)

format: venv
	$(BIN)/ruff format $(RUFF_PATHS)
	$(BIN)/ruff check --fix $(RUFF_PATHS)
