# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export CAIRN_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test setup lint bench

demo: setup
	$(VENV)/bin/cairn demo

test: setup
	bash .ci/postgres
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml .ci/setup .ci/constraints.txt
	bash .ci/setup $(VENV)
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench: setup
	$(PY) benchmarks/bench_registry.py
	$(PY) benchmarks/bench_knowledge.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_faults.py
	$(PY) benchmarks/bench_zoo_weights.py
