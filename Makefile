# The two commands the README opens with are `make run` and `make test`; the rest are helpers.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Debian packages of the real servers the tests start: binary:package
SERVERS := memcached:memcached prometheus:prometheus promtool:prometheus \
           prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
           docker-compose:docker-compose redis-server:redis-server nginx:nginx ss:iproute2
# Debian packages only the benchmarks use (never `make test`): binary:package
BENCH_TOOLS := wrk:wrk taskset:util-linux
PYTEST_ARGS ?=
# Every install pins the versions the tests last passed with; `make constraints` rewrites the file
# from the current venv (pip freeze --exclude-editable) after a dependency change.
CONSTRAINTS := constraints.txt

.PHONY: help run test lint typecheck unit system-deps bench-deps bench stack clean constraints

help:
	@echo "make run    - run the service on embedded defaults (in-memory cache, simulator)"
	@echo "make test   - install what is missing, then lint, type-check and run every test"
	@echo "make stack  - memcached + app + Prometheus + Alertmanager + load, on 127.0.0.1"
	@echo "make bench  - run the benchmarks (nothing else should run meanwhile)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@

constraints: $(VENV)/.dev
	{ echo "# Exact versions of every runtime and dev dependency the tests last passed with."; \
	  echo "# Regenerate after changing dependencies: make constraints"; \
	  echo "# (= .venv/bin/pip freeze --exclude-editable, in a venv made by make test)."; \
	  $(BIN)/pip freeze --exclude-editable; } > $(CONSTRAINTS)

$(VENV)/.bench: $(VENV)/.dev
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev,bench]'
	@touch $@

run: $(VENV)/.runtime
	$(BIN)/market-api

system-deps:
	@missing=""; \
	for pair in $(SERVERS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: system-deps lint typecheck
	$(BIN)/pytest -ra $(PYTEST_ARGS)

unit: $(VENV)/.dev
	$(BIN)/pytest -ra -m "not memcached and not prometheus and not alertmanager and not server and not e2e and not redis and not nginx"

bench-deps:
	@$(MAKE) --no-print-directory system-deps SERVERS="$(BENCH_TOOLS)"

bench: $(VENV)/.bench system-deps bench-deps
	$(BIN)/python -m bench.cache_bench
	$(BIN)/python -m bench.http_floor

stack: $(VENV)/.runtime system-deps
	$(BIN)/market-stack

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
