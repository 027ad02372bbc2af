# Civic super-app backend. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
STAMP := $(VENV)/.installed-stamp
# Message catalogs: the .po files are the source, the .mo files are built (not committed).
CATALOGS := core/translations
CATALOG_LOCALES := ko en zh
MO_FILES := $(foreach l,$(CATALOG_LOCALES),$(CATALOGS)/$(l)/LC_MESSAGES/messages.mo)
export FLASK_APP := app

.DEFAULT_GOAL := help
# make test / make fuzz use this PostgreSQL when TEST_DATABASE_URL is not set and it answers.
LOCAL_POSTGRESQL ?= postgresql://postgres@127.0.0.1:5432/postgres
FUZZ_EXAMPLES ?= 2000
FUZZ_ONLY ?=
REHEARSE_SECONDS ?= 60
LOAD_SECONDS ?= 600
LOAD_USERS ?= 40
# Prints the PostgreSQL URL to test on and succeeds, or prints why there is none and fails.
FIND_POSTGRESQL = if [ -n "$$TEST_DATABASE_URL" ]; then echo "$$TEST_DATABASE_URL"; \
	else $(BIN)/python -m devtools.postgres "$(LOCAL_POSTGRESQL)"; fi

.PHONY: help install run test test-sqlite test-postgresql fuzz lint fmt db-upgrade bench clean \
	messages compile-messages authz-table crash rehearse load

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-face.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools<81' wheel
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-face.txt
	@touch $@

install: $(STAMP) compile-messages ## Create .venv, install dependencies, compile the catalogs

messages: $(STAMP) ## Extract message ids (pybabel extract) and update the ko, en, zh catalogs
	@mkdir -p $(CATALOGS)
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -c TRANSLATORS: --sort-output --no-wrap \
		--add-location=file --project=civic-super-app -o $(CATALOGS)/messages.pot .
	@for l in $(CATALOG_LOCALES); do \
		$(BIN)/pybabel -q update --init-missing --ignore-obsolete --ignore-pot-creation-date --no-wrap \
			-i $(CATALOGS)/messages.pot -d $(CATALOGS) -l $$l || exit 1; \
	done
	@echo "Translate the new, empty or fuzzy entries in $(CATALOGS)/{ko,zh}/LC_MESSAGES/messages.po"

compile-messages: $(MO_FILES) ## Compile the catalogs (.po to .mo; run by install, test and run)

$(CATALOGS)/%/LC_MESSAGES/messages.mo: $(CATALOGS)/%/LC_MESSAGES/messages.po | $(STAMP)
	$(BIN)/pybabel compile --statistics -l $* -i $< -o $@

db-upgrade: install ## Migrate the database (DATABASE_URL, default instance/civic.db) to head
	@mkdir -p instance
	$(BIN)/flask db upgrade

run: db-upgrade ## Migrate, seed demo data (new demo API keys), serve the API on 127.0.0.1:$(PORT) with localstripe and the MQTT ingest worker; Ctrl-C stops
	$(BIN)/flask demo seed
	@PORT=$(PORT) SCHEDULER_EMBEDDED=1 $(BIN)/python -m devtools.mqtt_broker --wrap \
		$(BIN)/python -m devtools.localstripe \
		--wrap $(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install lint test-sqlite test-postgresql ## Lint, then the suite (with a bounded schemathesis pass) on SQLite and on PostgreSQL

test-sqlite: install ## Run the suite on SQLite
	CIVIC_TEST_BACKEND=sqlite $(BIN)/pytest

test-postgresql: install ## Run the suite on PostgreSQL: TEST_DATABASE_URL, else the one on 127.0.0.1:5432
	@if url=$$($(FIND_POSTGRESQL)); then \
		echo "PostgreSQL pass on $$url"; \
		TEST_DATABASE_URL="$$url" CIVIC_TEST_BACKEND=postgresql $(BIN)/pytest; \
	else \
		echo "$$url"; \
	fi

fuzz: install ## Deep schemathesis pass: FUZZ_EXAMPLES (2000) per operation, each caller (or FUZZ_ONLY=citizen...), on PostgreSQL if it answers, else SQLite
	@if url=$$($(FIND_POSTGRESQL)); then backend=postgresql; else backend=sqlite; url=; fi; \
	echo "schemathesis, $(FUZZ_EXAMPLES) examples per operation, on $$backend $$url"; \
	TEST_DATABASE_URL="$$url" CIVIC_TEST_BACKEND=$$backend CIVIC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/pytest -m fuzz tests/test_openapi_fuzz.py $(if $(FUZZ_ONLY),-k "$(FUZZ_ONLY)")

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

authz-table: install ## Rewrite README's "Who may call what" table from tests/authz_rules.py
	$(BIN)/python -m devtools.authz_table --write

bench: install ## Run every benchmark in bench/ (each against a baseline in the same run) and write bench/RESULTS.md; BENCH_ONLY=name picks some
	$(BIN)/python -m bench.run_all $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

CRASH_ROUNDS ?= 10
crash: install ## SIGKILL the scheduler, an ingest worker and an API worker CRASH_ROUNDS (10) times each on PostgreSQL; check nothing is charged twice, lost or half-written
	@url=$$($(FIND_POSTGRESQL)) || { echo "$$url"; exit 1; }; \
	$(BIN)/python -m devtools.crash --rounds $(CRASH_ROUNDS) --database "$$url"

rehearse: install compile-messages ## Scale-out rehearsal on PostgreSQL: nginx, 2 API hosts, 2 ingest workers, 2 schedulers; load for REHEARSE_SECONDS (60) with kills
	$(BIN)/python -m devtools.rehearse --seconds $(REHEARSE_SECONDS)

load: install compile-messages ## Mixed locust load (headless) on gunicorn and PostgreSQL for LOAD_SECONDS (600) at LOAD_USERS (40): errors, per-route percentiles, worker RSS
	LOAD_SECONDS=$(LOAD_SECONDS) LOAD_USERS=$(LOAD_USERS) $(BIN)/python bench/load/run.py

clean: ## Remove the virtualenv, the local database and the local Stripe store
	rm -rf $(VENV) instance/civic.db* instance/localstripe.pickle instance/localstripe.url $(MO_FILES)
