# Each target creates .venv and installs PHDS the first time, so a fresh checkout needs nothing else.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,synthetic,torch]'
	$(BIN)/python -m pip install --quiet --no-deps 'anonymeter==1.1.0'  # its metadata pins numpy<1.27
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phds demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not fault"

# The slow tier: real hubs and nodes killed or paused mid-study, secure aggregation over real processes,
# the demo on real OHDSI samples, benchmark smoke runs. CI runs it after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or fault"

check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
