# Civic super-app backend. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
STAMP := $(VENV)/.installed-stamp
export FLASK_APP := app

.DEFAULT_GOAL := help
.PHONY: help install run test test-sqlite test-postgresql lint fmt db-upgrade bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools<81' wheel
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(STAMP) ## Create .venv and install runtime and development dependencies

db-upgrade: install ## Migrate the database (DATABASE_URL, default instance/civic.db) to head
	@mkdir -p instance
	$(BIN)/flask db upgrade

run: db-upgrade ## Migrate, seed demo data, serve the API on 127.0.0.1:$(PORT) (+ localstripe, MQTT ingest)
	$(BIN)/flask demo seed
	PORT=$(PORT) SCHEDULER_EMBEDDED=1 $(BIN)/python -m devtools.mqtt_broker --wrap \
		$(BIN)/python -m devtools.localstripe \
		--wrap $(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install lint test-sqlite test-postgresql ## Lint, then run the whole suite on SQLite and on PostgreSQL

test-sqlite: install ## Run the suite on SQLite
	CIVIC_TEST_BACKEND=sqlite $(BIN)/pytest

test-postgresql: install ## Run the suite on PostgreSQL (needs TEST_DATABASE_URL)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		CIVIC_TEST_BACKEND=postgresql $(BIN)/pytest; \
	else \
		echo "PostgreSQL pass SKIPPED: TEST_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)."; \
	fi

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Run the benchmarks in bench/ (each prints its ratio to a baseline)
	@shopt -s nullglob; scripts=(bench/bench_*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "No benchmarks yet (bench/bench_*.py)."; fi; \
	for script in "$${scripts[@]}"; do echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

clean: ## Remove the virtualenv, the local database and the local Stripe store
	rm -rf $(VENV) instance/civic.db* instance/localstripe.pickle
