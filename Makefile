# adminvms: `make run` starts the product on the embedded default,
# `make test` runs every test (bringing up what the tests need).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format venv services migrate bench clean

# Pieces that bring up optional test infrastructure (Docker engine, OpenStack control plane).
include $(wildcard mk/*.mk)

venv: $(STAMP)
# A venv without pip is what a failed `python3 -m venv` (Debian without python3-venv) leaves behind:
# make sure venvs can be made (scripts/ensure-venv.sh), then make it anew.
$(STAMP): pyproject.toml
	@$(PY) -m pip --version >/dev/null 2>&1 || { bash scripts/ensure-venv.sh $(PYTHON) && $(PYTHON) -m venv --clear $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

## run: migrate, seed the demo and serve on http://127.0.0.1:8000 with a worker and beat
run: venv
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then bash scripts/ensure-docker.sh; fi
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "adminvms: http://$(HOST):$(PORT)/  (API: /api/v1/, docs: /api/docs/; Ctrl-C stops)"
	@VENV=$(VENV) HOST=$(HOST) PORT=$(PORT) exec bash scripts/run.sh

services:
	@bash scripts/ensure-services.sh
	@bash scripts/ensure-chromium.sh

## lint: ruff, import contracts, missing migrations
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	ADMINVMS_DATA_DIR=$$(mktemp -d) $(PY) manage.py makemigrations --check --dry-run

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## test: the whole suite on PostgreSQL and Redis, plus a smoke run on SQLite
test: venv services lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## bench: list/launch latency, queries per list, reconcile time; cold vs pool launch, heal time
bench: venv services
	$(PY) benchmarks/bench_api.py
	$(PY) benchmarks/bench_fleet.py

## soak: lifecycles under worker kills (sim and Docker), backend faults, a broker outage, web load (minutes)
.PHONY: soak
soak: venv services docker-up
	$(PY) -m tests.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .data staticfiles
