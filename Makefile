# dcmtier: the two commands a newcomer needs are `make demo` and `make test`; `make test-fast`
# runs the unit tests alone (under 2 minutes on 2 cores), the check to run while working.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install viewer-codecs system-deps test test-fast lint docs demo ui ui-stop bench bench-scale clean

install: $(STAMP) viewer-codecs

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The web viewers' WASM codecs (`dcmtier viewer-check`), from the committed lock file. Without
# npm this says so and goes on, unless CI=true (CI must check the viewers).
VIEWER_NODE := include/dcmtier/viewer/node
viewer-codecs: $(VIEWER_NODE)/node_modules/.package-lock.json

$(VIEWER_NODE)/node_modules/.package-lock.json: $(VIEWER_NODE)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix $(VIEWER_NODE) --ignore-scripts --no-audit --no-fund --loglevel=error; \
	elif [ "$$CI" = true ]; then \
	  echo "npm is not installed: CI needs Node.js 20+ and npm for the viewer codecs" >&2; exit 1; \
	else \
	  echo "npm not found: skipping the viewer codecs (dcmtier viewer-check needs Node.js and npm)"; \
	fi

# The Debian tools the tests check outputs with (the same script CI runs): installed when make
# runs as root; otherwise one line says what to run.
system-deps:
	@bash scripts/install-system-deps.sh

test: system-deps $(STAMP) viewer-codecs
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

# tests/unit only, without the tests marked slow: no PostgreSQL, Airflow or fault processes.
test-fast: system-deps $(STAMP) viewer-codecs
	$(BIN)/python -m pytest -n 2 tests/unit -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check include tests dags plugins
	$(BIN)/ruff format --check include tests dags plugins
	$(BIN)/mypy

# docs/reference/ (tiers, command line, environment, catalogue schema) written from the code;
# tests/unit/test_docs.py fails when they differ from what this writes.
docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

demo: $(STAMP)
	bash scripts/demo.sh

# Airflow's UI on this machine (airflow standalone, embedded defaults, the demo study): prints
# the URL and how to sign in; Ctrl-C (or `make ui-stop` from another shell) stops it.
ui: $(STAMP)
	bash scripts/ui.sh

ui-stop:
	bash scripts/ui.sh --stop

# dcmtier against the gdcmconv-per-file chain (bench/README.md): writes bench/results.json.
# The defaults take about an hour on 2 cores; pass options through BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--slices 20 --runs 1 --rss-slices 10 20 --dag-slices 5"
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/dcmtier bench $(BENCH_ARGS)

# Discovery at scale (docs/operators/archive-scale.md): dcmtier discover on 10,000 and 100,000 synthetic
# files, first pass, repeat and 1 % new; writes bench/scale.json. SCALE_ARGS adds options, e.g.
#   make bench-scale SCALE_ARGS="--scale-files 20000 --new-files 50"
#   make bench-scale SCALE_ARGS="--s3 --scale-files 10000"   (on a loopback moto S3 server)
#   make bench-scale SCALE_ARGS="--dag"   (a 300-study x 2-tier backfill on a real Airflow;
#                                           needs PostgreSQL on 127.0.0.1:5432 and Redis)
SCALE_ARGS ?=
bench-scale: $(STAMP)
	$(BIN)/dcmtier bench scale $(SCALE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info include/*.egg-info demo-data
