# Every target creates .venv on first use, so each works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= demo-data

.PHONY: demo test lint fmt install bench web-vendor messages

$(BIN)/liaison: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/liaison

## demo: install, create demo-data/ on first run, start the broker on http://127.0.0.1:8750
demo: install
	@test -d $(DEMO) || $(BIN)/liaison init $(DEMO) --demo
	$(BIN)/liaison serve --data $(DEMO)

## test: install, then run the whole test suite (SQLite always, PostgreSQL when reachable)
## in TEST_WORKERS processes (pytest-xdist; 0 runs it in this one), printing the slowest tests
TEST_WORKERS ?= 2
# The broker's own modules are compiled first: this machine sets PYTHONDONTWRITEBYTECODE, so
# otherwise every `liaison` the tests start compiles them from source again (0.2-0.4 s each).
test: install
	$(BIN)/python -m compileall -q broker adapters
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=25

## lint: formatting, lint and strict typing
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: start real servers on loopback and print intake, ceilings, routing and audit figures
bench: install
	$(BIN)/python tests/bench/bench.py

## messages: extract the Python messages to broker/locale/liaison.pot and merge them into each catalog
messages: install
	$(BIN)/pybabel extract -o broker/locale/liaison.pot --project=Liaison --version=0.1.0 \
		--copyright-holder="Liaison contributors" --no-location --sort-output -k N_ broker adapters
	for po in broker/locale/*/LC_MESSAGES/liaison.po; do \
		$(BIN)/pybabel update -i broker/locale/liaison.pot -o $$po --ignore-obsolete \
			-l $$(basename $$(dirname $$(dirname $$po)) | tr - _); done

## web-vendor: rebuild the web inbox's bundled cryptography from the pinned npm packages
web-vendor:
	cd web-vendor && npm ci --no-audit --no-fund && npx esbuild entry.js --bundle --format=esm \
		--minify --legal-comments=eof --outfile=../broker/web/static/vendor/noble.js
