# `make demo` and `make test` each set up .venv on first use (torch first, then the pinned stack).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/genxfer demo --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check hf_genxfer tests scripts
	$(BIN)/ruff format --check hf_genxfer tests scripts

format: $(STAMP)
	$(BIN)/ruff format hf_genxfer tests scripts
	$(BIN)/ruff check --fix hf_genxfer tests scripts

clean:
	rm -rf $(VENV) demo_out outputs .pytest_cache
