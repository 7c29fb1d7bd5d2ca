# make demo: build a registry from example model repos, serve it, install and run a model.
# make test: lint, type-check and run the test suite.
# Both create .venv and install what they need (git-lfs via apt-get when missing).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mx-installed

.PHONY: demo test test-fast lint typecheck pytest setup bench clean

$(STAMP): pyproject.toml scripts/ensure-system-deps.sh
	./scripts/ensure-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck pytest

# Unit tests only (tests/unit, laid out like the package): seconds, for the edit-test loop.
test-fast: setup
	$(BIN)/pytest -q tests/unit

demo: setup
	$(BIN)/python examples/demo.py

bench: setup
	$(BIN)/python bench/install.py
	$(BIN)/python bench/index_build.py

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
