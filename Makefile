# teleoffice: `make run` starts a demo PBX, `make test` runs every check.
# Both do their own set-up on a fresh Debian machine (as root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ./data
SIP    ?= 127.0.0.1:5060
HTTP   ?= 127.0.0.1:8080

.PHONY: install system-deps system-deps-test run test lint format bench fuzz clean

$(BIN)/python:
	./scripts/system-deps.sh run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The stamp is newer than pyproject.toml once the project and its dev
# dependencies are installed, so `make install` is idempotent and quick.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

system-deps:
	./scripts/system-deps.sh run

system-deps-test:
	./scripts/system-deps.sh test

run: install
	$(BIN)/teleoffice --data $(DATA) init
	$(BIN)/teleoffice --data $(DATA) serve --sip $(SIP) --http $(HTTP) --demo

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

test: system-deps-test install lint
	$(BIN)/pytest -n 2 --dist loadgroup

bench: system-deps-test install
	$(BIN)/python -m teleoffice.bench $(if $(QUICK),--quick,)

# The fuzzers of tests/fuzz with many more examples than the suite runs them
# with (FUZZ_EXAMPLES per test, 20000 by default: five to ten minutes on two
# cores). Crashes are kept in .hypothesis/ and replayed first by later runs.
FUZZ_EXAMPLES ?= 20000
fuzz: install
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -n 2 --timeout 0 tests/fuzz

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
