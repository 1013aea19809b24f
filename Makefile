# The two commands: `make demo` (sign a real PDF on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
PORT ?= 8000

.PHONY: demo test lint system-deps system-deps-test venv clean

demo: system-deps $(BIN)/signing-gateway
	$(BIN)/signing-gateway demo --data-dir $(DATA_DIR) --port $(PORT)

test: system-deps-test $(BIN)/signing-gateway
	$(BIN)/ruff check .
	$(BIN)/pytest

system-deps:
	@scripts/system-deps.sh

system-deps-test:
	@scripts/system-deps.sh --test

venv: $(BIN)/signing-gateway

$(BIN)/signing-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) $(DATA_DIR) *.egg-info
