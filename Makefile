# Everything runs from .venv, made here on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-pure lint bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Pure code alone, in seconds: no service is started, and no service fixture is even loaded (the
# confcutdir leaves tests/conftest.py out), so a test there that needs one fails here. Schemathesis's
# plugin is left out too: no pure test uses it, and pytest would rewrite its 200 modules.
test-pure: install
	$(BIN)/python -m pytest tests/pure --confcutdir=tests/pure --hypothesis-profile=quick -p no:schemathesis \
		$(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

demo: install
	$(BIN)/flask --app wsgi demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis
