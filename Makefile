# The README's commands. Each target installs the project into $(VENV) first: `make run`
# the service alone, the others with the development tools (tests, linters, benchmarks).
VENV ?= .venv
PY := $(VENV)/bin/python
# `make run` uses DATABASE_URL and REDIS_URL if set, else embedded servers in ./.paysys/.

.PHONY: install install-run run test lint compose-check bench bench-batch

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-run: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e .
	touch $@

install: $(VENV)/.installed

install-run: $(VENV)/.installed-run

run: install-run
	$(VENV)/bin/paysys run

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

compose-check: install
	$(VENV)/bin/docker-compose -f docker-compose.yml config --quiet
	$(VENV)/bin/docker-compose -f docker-compose.yml --profile monitoring config --quiet

bench: install
	$(PY) -m bench.run

bench-batch: install
	$(PY) -m bench.batch
