# threadwire developer commands. `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint typecheck pytest services-up services-down lock bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install threadwire with its dev tools

run: $(STAMP) ## serve on 127.0.0.1:8000 with the embedded SQLite store
	THREADWIRE_LOG_JSON=$${THREADWIRE_LOG_JSON:-false} \
	  $(BIN)/threadwire serve --host $(HOST) --port $(PORT) --print-demo-token

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	bash scripts/test.sh

test: lint typecheck pytest ## every check: ruff, mypy --strict, pytest with coverage gates

services-up: ## start PostgreSQL and Redis on loopback (installs them when missing)
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

lock: ## refresh constraints.txt from a fresh resolve
	rm -rf /tmp/threadwire-lock && $(PYTHON) -m venv /tmp/threadwire-lock
	/tmp/threadwire-lock/bin/pip install -q -e '.[dev]'
	{ echo "# Exact versions for reproducible installs; regenerate with 'make lock'."; \
	  /tmp/threadwire-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt

bench: $(STAMP) ## every benchmark; fails at the end if any missed its bar
	status=0; for b in benchmarks/bench_*.py; do $(BIN)/python $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
