# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test venv lint

# torch first: `torch==2.13.0` is a local CPU wheel on the project's machines; any other
# spec pulls a multi-GB CUDA build from PyPI.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"

venv: $(BIN)/python

demo: venv
	$(BIN)/pip install -q -e .
	$(BIN)/heptagon demo

# pytest runs in two pytest-xdist workers, one per core of the project's 2-core machines
# (the suite takes 11 min there instead of 21 min in one process); the shared samples are
# generated once under a lock (tests/conftest.py).
# The FAIR tests read the published CFF / CodeMeta schemas shipped inside cffconvert and
# codemetapy; their own pins would downgrade jsonschema, so they come without dependencies.
test: venv
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps cffconvert==2.0.0 codemetapy==3.0.4
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -m "not slow"
