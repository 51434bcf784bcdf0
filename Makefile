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

.PHONY: help venv run test lint format bench installer

help:
	@echo "make venv    create .venv and install the project with its dev tools"
	@echo "make run     migrate, load the catalogue, start gunicorn and the qcluster worker"
	@echo "make test    run the tests (SQLite unless DATABASE_URL is set; PYTEST_ARGS passes through)"
	@echo "make lint    ruff check, ruff format --check, import contracts, function sizes"
	@echo "make format  ruff format and ruff check --fix"
	@echo "make bench   benchmarks against same-run baselines on PostgreSQL; table into README.md"
	@echo "make installer  the reference Beacon installer tarball (+ .sha256) into dist/"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: venv
	scripts/dev-run.sh

# The test OIDC provider (tests/oidc: npm's oidc-provider) for the single sign-on and
# self-service tests; reinstalled only when its lock file changed.
OIDC_STAMP := tests/oidc/node_modules/.installed

$(OIDC_STAMP): tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund
	@touch $(OIDC_STAMP)

test: venv $(OIDC_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_function_size.py

format: venv
	$(BIN)/ruff format $(RUFF_PATHS)
	$(BIN)/ruff check --fix $(RUFF_PATHS)

# Needs PostgreSQL at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); see
# the README's "Performance" section. BENCH_KEEP_SCHEMA=1 keeps a migrated template between runs.
bench: venv
	$(BIN)/python -m benchmarks.run

# Deterministic (same sources, same bytes); VERSION=1.2.3 overrides installer/reference/VERSION.
installer:
	$(PYTHON) scripts/build_installer.py $(if $(VERSION),--version $(VERSION)) --out dist
