PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck screenshots bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/fleet demo

screenshots: $(STAMP)
	$(BIN)/python screenshots/make_screenshots.py --demo

bench: $(STAMP)
	$(BIN)/python bench/controlplane_load.py --agents 2000
	$(BIN)/python bench/agent_footprint.py
	$(BIN)/python bench/tui_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
