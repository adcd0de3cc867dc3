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

DEMO_MEMBERS ?= 1000
DEMO_SEED ?= 7
DEMO_MEMBER := demo-$(DEMO_SEED)-00001
KEY := PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance keys create

demo: $(STAMP)
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance db upgrade
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance demo load --members $(DEMO_MEMBERS) --seed $(DEMO_SEED)
	@echo "Admin API key (use as: Authorization: Bearer <key>):"
	@$(KEY) --role admin --name demo-admin | tail -n 1
	@echo "Integrator key (card transactions, refunds, redemptions, referrals):"
	@$(KEY) --role integrator --name demo-integrator | tail -n 1
	@echo "Agent key (members, balances, movements, redemptions):"
	@$(KEY) --role agent --name demo-agent | tail -n 1
	@echo "Member key (acts only for member $(DEMO_MEMBER)):"
	@$(KEY) --role member --name demo-member --member-ref $(DEMO_MEMBER) | tail -n 1
	@echo "Try: curl -H 'Authorization: Bearer <member key>' http://$(HOST):$(PORT)/v1/members/$(DEMO_MEMBER)/balance"
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
