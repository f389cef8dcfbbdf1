# Cộng đồng số: `make run` serves the API, `make test` runs everything CI checks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install run test lint typecheck pytest bench chaos catalogs clients docs-check messages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "installing the project and its development tools (about 2 minutes the first time)"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

# Compiled catalogs (.mo) are build output, never committed.
catalogs: $(STAMP)
	$(BIN)/pybabel compile --statistics -d i18n -D messages

# The pinned TypeScript client toolchain (tests/test_clients.py); skipped without npm.
CLIENTS := tools/clients/node_modules/.installed
$(CLIENTS): tools/clients/package.json tools/clients/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tools/clients && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "npm not found: the TypeScript client check will be skipped"; fi

clients: $(CLIENTS)

install: $(STAMP) catalogs clients

run: install
	$(BIN)/congdongso migrate
	$(BIN)/congdongso demo
	$(BIN)/congdongso serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

# /schema rendered in headless Chromium with no network (Debian: apt-get install chromium).
docs-check: install
	$(BIN)/pytest -q -m docs tests/test_docs_page.py

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench

# Faults and hostile clients on loopback (about 5 min): PostgreSQL restarts, terminated
# backends, a killed worker, clients that leave, export storms, a table lock. Prints a table
# and writes bench/results/chaos.md; exits non-zero when a goal is missed.
chaos: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench.chaos

# Re-extract message ids after changing user-facing text, then translate the new entries.
messages: $(STAMP)
	$(BIN)/pybabel extract -F pyproject.toml --no-location --sort-output \
		-w 100 -o i18n/messages.pot api schemas
	$(BIN)/pybabel update -i i18n/messages.pot -d i18n -D messages --no-fuzzy-matching -w 100 --ignore-obsolete

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
