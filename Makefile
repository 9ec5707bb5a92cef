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

CHROMIUM ?= /usr/bin/chromium

# The browser tests need Debian's chromium. Where it is missing (a developer's
# machine with only Python) they are left out with a line saying so; in CI
# (CI set) they always run, and fail if chromium is missing.
define run_pytest
	@if [ -x $(CHROMIUM) ] || [ -n "$$CI" ]; then \
		$(1) $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "NOTE: $(CHROMIUM) not found: browser tests not run (apt-get install chromium)"; \
		$(1) $(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS); \
	fi
endef

test: install
	$(call run_pytest,)

test-postgres: install
	$(call run_pytest,DATABASE_URL=$(POSTGRES_TEST_URL))

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
