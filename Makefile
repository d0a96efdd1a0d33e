# Two commands on a fresh machine (Python 3.11, nothing else installed):
#   make run    install everything, start the embedded stack with demo traffic (Ctrl-C stops it)
#   make test   install everything, run the whole test suite
#   make bench  run every benchmark scenario and regenerate docs/benchmarks.md (10–15 minutes on 2 idle cores)
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed-stamp
DURATION ?=
PYTEST_ARGS ?=

.PHONY: run test bench install system-deps clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	URLLIB3_NO_OVERRIDE=1 $(BIN)/python -m pip install --quiet --no-binary urllib3-future -c constraints.txt -e ".[embedded,test,grafana,bench]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	scripts/install-system-deps.sh

run: install
	$(BIN)/gateledger up --demo $(if $(DURATION),--duration $(DURATION),)

# pytest exits 5 when it collected no tests (a typo in PYTEST_ARGS, a broken conftest): say so and fail.
test: install system-deps
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: FAILED: pytest collected no tests (exit 5)" >&2; fi; exit $$rc

bench: install
	$(BIN)/gateledger bench all --write-docs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
