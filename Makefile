# Trainyard developer commands. `make run` and `make test` install what they need first.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
BOOTSTRAP := bash scripts/bootstrap.sh
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k storage -x"`.
PYTEST_ARGS ?=
# What `make test-fast` leaves out (see the markers in pyproject.toml and tests/conftest.py).
FAST_MARKERS := not slow and not browser and not emulator and not database
# pytest-xdist workers (one per core of the 2-core reference machine); each file's tests stay on
# one worker, so a module's fixtures are built once. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint bootstrap clean vendor

help:
	@echo "make run    start Trainyard on its embedded defaults (TRAINYARD_HOST/TRAINYARD_PORT, default 127.0.0.1:5000)"
	@echo "make test   ruff + the whole test suite (PYTEST_ARGS=... passes arguments to pytest; PYTEST_WORKERS=0: one process)"
	@echo "make test-fast  ruff + the unit tests: no emulator, browser, server process, Redis or training"
	@echo "make lint   ruff only"
	@echo "make clean  remove .venv, node_modules and caches (keeps data/)"
	@echo "make vendor re-copy the vendored browser assets into static/vendor/ (needs npm)"

run:
	$(BOOTSTRAP) python
	$(PYTHON) -m app

bootstrap:
	$(BOOTSTRAP) dev node browser

lint:
	$(BOOTSTRAP) dev
	$(VENV)/bin/ruff check .

test: bootstrap
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest $(XDIST) $(PYTEST_ARGS)

# TRAINYARD_TEST_FAST makes a test that reaches an emulator without its marker fail by name.
test-fast:
	$(BOOTSTRAP) dev
	$(VENV)/bin/ruff check .
	TRAINYARD_TEST_FAST=1 $(PYTHON) -m pytest $(XDIST) -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

vendor:
	bash scripts/vendor_static.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
