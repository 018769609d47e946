# Two entry points (see README): `make run` and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench gpu-check clean

setup: $(STAMP)

# torch is installed on its own first, pinned, so pip takes the CPU build this machine ships and
# never resolves an unpinned (multi-GB CUDA) torch while solving the rest.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# `python run_all.py` writes to results/latest/ (git-ignored): a fresh clone stays clean. OMP_NUM_THREADS=1 unless
# set: on a small shared CPU one torch thread per run is the fast and steady setting (README, Known limitations).
run: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1 $(PY) run_all.py $(ARGS)

# Lint (ruff, whole repository) and type checks (mypy, optimizers/) first, so that a `# noqa` means something.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy optimizers
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.perf.optimizer_step $(ARGS)

# CUDA self-check (benchmarks/perf/gpu_check.py): prints one table per part, exits 1 on a failure; without CUDA it
# says so and exits 0. ARGS="--parts a,d", ARGS="--device cpu --tiny" (the logic on a CPU).
gpu-check: $(STAMP)
	$(PY) -m benchmarks.perf.gpu_check $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
