# slipway — developer entry points. On a fresh machine: `make run`, then `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; pyproject.toml or constraints.txt changing triggers a reinstall.
STAMP := $(VENV)/.installed
LINT_PATHS := slipway tests bench
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-x -k "auth and not slow"'
PYTEST_ARGS ?=

.PHONY: help venv run test lint format bench lock clean

help:
	@echo "make run     start Redis (if needed), migrate, create the first admin, run api + worker"
	@echo "make test    start PostgreSQL/Redis if needed and run the whole test suite (PYTEST_ARGS=...)"
	@echo "make lint    ruff check + ruff format --check on $(LINT_PATHS)"
	@echo "make format  ruff format + ruff check --fix on $(LINT_PATHS)"
	@echo "make bench   run every bench/[a-z]*.py script, one after the other"
	@echo "make venv    create .venv and install slipway with its dev tools (pinned by constraints.txt)"
	@echo "make lock    regenerate constraints.txt from a clean venv"
	@echo "make clean   remove .venv and caches (data/ is kept)"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	@touch $@

run: $(STAMP)
	scripts/run.sh

test: $(STAMP)
	scripts/test.sh $(PYTEST_ARGS)

lint: $(STAMP)
	@rc=0; \
	$(BIN)/ruff check $(LINT_PATHS) || rc=1; \
	$(BIN)/ruff format --check $(LINT_PATHS) || rc=1; \
	exit $$rc

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

bench: $(STAMP)
	@shopt -s nullglob; failed=(); scripts=(bench/[a-z]*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no bench/*.py scripts"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
	  echo "== $$script"; \
	  $(BIN)/python "$$script" || failed+=("$$script"); \
	  echo; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "failed: $${failed[*]}" >&2; exit 1; fi

# constraints.txt pins the whole dependency tree; regenerate it after changing pyproject.toml.
lock:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --disable-pip-version-check -q -e '.[dev]'; \
	"$$tmp/venv/bin/pip" freeze --exclude-editable | grep -viE '^(slipway|-e )' \
	  | LC_ALL=C sort -f -t= -k1,1 > constraints.txt; \
	echo "constraints.txt: $$(wc -l < constraints.txt) pins"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
	find slipway tests bench -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
