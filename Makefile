# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export CAIRN_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test setup lint bench gpu-wheels gpu-check-dry

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

# Issue 18: the one-call GPU check (benchmarks/gpu_check.sh). Wheels for the lent machine's
# Python 3.12 into .gpu-wheels/ (git-ignored; carried), and the same check on CPU at toy size.
gpu-wheels:
	bash benchmarks/gpu_check.sh --fetch-wheels

gpu-check-dry: setup
	bash benchmarks/gpu_check.sh --dry
