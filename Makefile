# Two commands on a fresh machine with Python 3.11 and make: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench demo clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ledger serve

demo: $(STAMP)
	$(BIN)/ledger demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.rebuild
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.health

clean:
	rm -rf $(VENV) .ledger
