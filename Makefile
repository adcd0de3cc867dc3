# Two commands: `make demo` and `make test`. Everything else is a helper they call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= sqlite:///./prevenance.db
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint layers typecheck serve clean bench screens audit lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
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
	@echo "Console users (role, username, password) for http://$(HOST):$(PORT)/console/ (members: /portal/):"
	@PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance console demo-users
	@echo "Serving on http://$(HOST):$(PORT)  (OpenAPI UI: http://$(HOST):$(PORT)/docs)"
	PREVENANCE_DATABASE_URL=$(DEMO_DB) $(BIN)/prevenance serve --host $(HOST) --port $(PORT)

# The layering of DESIGN.md (.importlinter), private names and table declarations (tools/check_names.py).
layers: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python tools/check_names.py

lint: layers
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy

test: layers
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/earn_api.py

# A PNG of each console screen in docs/screens/ (Debian chromium, a temporary database).
screens: $(STAMP)
	$(BIN)/python -m tools.screens docs/screens

# Known vulnerabilities in the installed (locked) dependencies: pip-audit, the registry's advisory data.
audit: $(STAMP)
	$(BIN)/pip-audit --local --progress-spinner off

# Re-pin every dependency after a change in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet -e '.[dev]'
	(echo "# Locked versions of every dependency (runtime and dev), installed as constraints by make."; \
	 echo "# Regenerate after changing pyproject.toml: make lock"; \
	 .lock-venv/bin/pip freeze --exclude-editable | grep -v '^prevenance') > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) prevenance.db prevenance.db-wal prevenance.db-shm .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
