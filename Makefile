# Two entry points for a fresh clone:
#   make run    set up .venv, run the shipped models (star graphs: exact match, the learned
#               order, a report) and a short training from scratch; all on bundled data
#   make test   set up .venv and run every test suite (core, plugins, example plugins)
# LOFLEX_TORCH overrides the torch requirement (e.g. LOFLEX_TORCH="torch==2.13.0+cu126").

PYTHON ?= python3
LOFLEX_TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.loflex-installed
RUN_DIR ?= runs/main-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup run test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml plugins/loflex-graphs/pyproject.toml plugins/loflex-molecules/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68"
	$(BIN)/python -m pip install -q "$(LOFLEX_TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]" -e plugins/loflex-graphs -e plugins/loflex-molecules
	touch $(STAMP)

run: setup
	docs/scripts/main-job.sh $(RUN_DIR) $(BIN)/loflex

test: setup
	$(BIN)/python -m pytest tests plugins/loflex-graphs/tests plugins/loflex-molecules/tests

lint: setup
	$(BIN)/ruff check framework plugins tests docs

clean:
	rm -rf $(VENV) runs
