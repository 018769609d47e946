# Two entry points (see README): `make run` and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)

# torch is installed on its own first, pinned, so pip takes the CPU build this machine ships and
# never resolves an unpinned (multi-GB CUDA) torch while solving the rest.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) run_all.py $(ARGS)

# Lint (ruff, whole repository) and type checks (mypy, optimizers/) first, so that a `# noqa` means something.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy optimizers
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.perf.optimizer_step $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
