# `make demo` and `make test` each set up .venv on first use (torch first, then the pinned stack).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

OLAH_VENV := .venv-olah
OLAH_STAMP := $(OLAH_VENV)/.installed-stamp

.PHONY: install demo test lint format bench clean local-hub local-hub-deps

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# olah (the Hub mirror behind scripts/local_hub.py) lives in its own venv: its pins clash with the training stack.
$(OLAH_STAMP): constraints-olah.txt
	test -x $(OLAH_VENV)/bin/python || $(PYTHON) -m venv $(OLAH_VENV)
	$(OLAH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLAH_VENV)/bin/python -m pip install --quiet -c constraints-olah.txt olah
	touch $(OLAH_STAMP)

install: $(STAMP)

local-hub-deps: $(OLAH_STAMP)

# A Hub on 127.0.0.1:8090 to push to and load from (Ctrl-C stops it); see the README's walk-through.
local-hub: $(STAMP) $(OLAH_STAMP)
	$(BIN)/python scripts/local_hub.py --root local_hub --port 8090

demo: $(STAMP)
	$(BIN)/genxfer demo --out demo_out

# Two workers (the machines have 2 cores); each test file runs on one worker, so a file's fixtures are shared.
test: $(STAMP) $(OLAH_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile tests

lint: $(STAMP)
	$(BIN)/ruff check hf_genxfer tests scripts
	$(BIN)/ruff format --check hf_genxfer tests scripts

format: $(STAMP)
	$(BIN)/ruff format hf_genxfer tests scripts
	$(BIN)/ruff check --fix hf_genxfer tests scripts

clean:
	rm -rf $(VENV) $(OLAH_VENV) demo_out outputs local_hub .pytest_cache
