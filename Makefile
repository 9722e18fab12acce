# Two commands on a fresh machine: `make run` (the platform) and `make test` (the whole suite).
# Everything else is a convenience. Variables given to `make up` / `make run` reach the services.
SHELL := /bin/bash
PY := .venv/bin/python
HARNESS := $(PY) deploy/local/harness.py
PYTEST_ARGS ?=

.PHONY: help bootstrap run up down status test test-unit lint lock bench demo clean

help:
	@echo "make run     start Kafka, PostgreSQL, Prometheus and the three services (Ctrl-C stops)"
	@echo "make up      the same in the background, returns when every /readyz answers 200; make down stops it"
	@echo "make test    the whole test suite against real Kafka and PostgreSQL"
	@echo "make chaos   the fault suite: kills services, Kafka and PostgreSQL under load, proves nothing lost (~2-4 min)"
	@echo "make lint    ruff and mypy;  make bench  the speed figures (about 6 minutes)"
	@echo "make lock    re-pin the Python dependencies (requirements*.lock, with hashes) after editing pyproject.toml"
	@echo "make demo    on a running stack (make up): bodies across Jiangsu, units, 3 min of simulated reports"
	@echo "             and a local webhook receiver that prints each delivery (DEMO_ARGS=\"--minutes 10 --rate 5\")"

bootstrap:
	@deploy/local/bootstrap.sh --with-browser

run: bootstrap
	@$(HARNESS) run

up: bootstrap
	@$(HARNESS) up --prometheus

down:
	@if [ -x $(PY) ]; then $(HARNESS) down; else python3 deploy/local/harness.py down; fi

status:
	@$(HARNESS) status

test: bootstrap
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: bootstrap
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: chaos
chaos: bootstrap
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

lint: bootstrap
	$(PY) -m ruff check .
	$(PY) -m mypy

lock:
	@deploy/local/lock.sh

# Every speed figure from one run (bench/README.md); BENCH_ARGS="--profile .run/bench/profiles" adds py-spy profiles,
# BENCH_ARGS="--only intake,latency" runs some scenarios only.
BENCH_ARGS ?=
bench: bootstrap
	@bench/bootstrap.sh $(if $(findstring --profile,$(BENCH_ARGS)),--profile)
	$(PY) -m bench $(BENCH_ARGS)

DEMO_ARGS ?=
demo:
	@if [ ! -x $(PY) ]; then echo "run make up first (it installs what is missing and starts the stack)"; exit 2; fi
	@$(PY) -m demo $(DEMO_ARGS)

clean: down
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .hypothesis
