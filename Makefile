# Two commands: `make demo` and `make test`. Everything else is a helper they call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= sqlite:///./prevenance.db
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint typecheck serve clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance db upgrade
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance demo load
	@echo "Admin API key (use as: Authorization: Bearer <key>):"
	@PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance keys create --role admin --name demo-admin | tail -n 1
	@echo "Serving on http://$(HOST):$(PORT)  (OpenAPI UI: http://$(HOST):$(PORT)/docs)"
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/earn_api.py

clean:
	rm -rf $(VENV) prevenance.db prevenance.db-wal prevenance.db-shm .pytest_cache .mypy_cache .ruff_cache
