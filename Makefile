# Two commands from a fresh clone: `make run` serves, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck pytest openapi kb-validate kb-stats bench clean chromium mutation

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

run: $(STAMP)
	$(PY) -m app migrate
	$(PY) -m app bootstrap-local
	@echo "Serving on http://127.0.0.1:8000  (Swagger UI: http://127.0.0.1:8000/docs)"
	$(PY) -m app serve --host 127.0.0.1 --port 8000

# The browser tests (tests/test_browser.py) drive Debian's chromium: installed here when absent.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=; if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(DEVSTAMP) chromium
	$(PY) -m ruff check app tests migrations bench
	$(PY) -m ruff format --check app tests migrations bench
	$(PY) -m mypy
	$(PY) -m app kb validate
	$(PY) -m pytest

openapi: $(STAMP)
	$(PY) -m app openapi > openapi/openapi.json

kb-validate: $(STAMP)
	$(PY) -m app kb validate

kb-stats: $(STAMP)
	$(PY) -m app kb stats

# Mutation testing of the engine (slow: run by hand, not in CI). Reports the killed share.
mutation: $(DEVSTAMP)
	$(PY) -m pip install --quiet "mutmut>=3.8,<4"
	$(VENV)/bin/mutmut run --max-children 2 || true
	$(VENV)/bin/mutmut results --all true | awk '{print $$NF}' | sort | uniq -c

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
