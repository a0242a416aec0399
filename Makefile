# The README's two commands: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: quickstart test lint bench install clean

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/hyperprompt train --gin_file=experiments/quickstart.gin \
	  --gin.MODEL_DIR="'runs/quickstart'"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no test; that must fail CI, and it does (non-zero).
# pytest-xdist runs the suite over every core, one test file per worker at a time (so a
# file's module-scoped fixtures, e.g. trained runs, are built once); TEST_WORKERS=0 runs
# it in this process.
TEST_WORKERS ?= auto
test: $(STAMP) lint
	$(VENV)/bin/pytest -q --durations=10 -n $(TEST_WORKERS) --dist loadfile tests

# 33-41 min on 2 cores (compile_xxl: ~13): writes benchmarks/results/*.json and benchmarks/results/README.md.
bench: $(STAMP)
	$(PY) -m benchmarks.vs_torch
	$(PY) -m benchmarks.profile_step
	$(PY) -m benchmarks.method_overhead --repeats 3
	TQDM_DISABLE=1 $(PY) -m benchmarks.trainer_throughput
	$(PY) -m benchmarks.compile_xxl
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) runs *.egg-info
