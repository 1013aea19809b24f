# The two commands: `make demo` (sign a real PDF on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
PORT ?= 8000

.PHONY: demo test lint lock system-deps system-deps-test venv clean

demo: system-deps $(BIN)/signing-gateway
	$(BIN)/signing-gateway demo --data-dir $(DATA_DIR) --port $(PORT)

test: system-deps-test lint
	$(BIN)/pytest

# Style, types (mypy --strict on every package) and the one-way imports (import-linter).
lint: $(BIN)/signing-gateway
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

system-deps:
	@scripts/system-deps.sh

system-deps-test:
	@scripts/system-deps.sh --test

venv: $(BIN)/signing-gateway

# Every install comes from requirements.lock (exact versions, with hashes); the project
# itself is installed without resolving anything, then checked against the lock.
$(BIN)/signing-gateway: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/check_lock.py
	$(BIN)/pip check
	@touch $@

# Refreshes requirements.lock from pyproject.toml (newest versions its bounds admit, for
# every platform and every extra). Review the diff, run `make test`, commit both files.
UV_VERSION := 0.13.9
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --all-extras --universal \
	  --python-version 3.11 --generate-hashes --upgrade -o requirements.lock

clean:
	rm -rf $(VENV) $(DATA_DIR) *.egg-info
