PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install test test-postgres lint format demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Without a SECRET_KEY in the environment the demo runs in DEBUG mode, which
# allows the local development key; set SECRET_KEY to run it as in production.
demo: install
	$(if $(SECRET_KEY),,DEBUG=true) $(BIN)/python manage.py demo
