# Trainyard developer commands. `make run` and `make test` install what they need first.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
BOOTSTRAP := bash scripts/bootstrap.sh
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k storage -x"`.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test lint bootstrap clean vendor

help:
	@echo "make run    start Trainyard on its embedded defaults (TRAINYARD_HOST/TRAINYARD_PORT, default 127.0.0.1:5000)"
	@echo "make test   ruff + the whole test suite (PYTEST_ARGS=... passes arguments to pytest)"
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
	$(PYTHON) -m pytest $(PYTEST_ARGS)

vendor:
	bash scripts/vendor_static.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
