#!/bin/sh
# Download, here, the wheels a lent GPU machine lacks, for `python -m benchmarks.perf.gpu_check` there.
#
# That machine (Python 3.12, x86-64, no package index) has torch, transformers, accelerate, tokenizers, numpy,
# pandas, pyarrow, matplotlib, tqdm, PyYAML, huggingface-hub, fsspec, xxhash, filelock and requests, but not these
# pyproject pins: datasets (the text pipeline stores its token blocks with it) with its two missing dependencies
# dill and multiprocess (the versions datasets 5.2.0 is tested with here), lion-pytorch and adam-mini (the
# lion / adam_mini recipes). stable-baselines3, gymnasium and mujoco are left out: only the mujoco domain needs
# them, and gpu_check does not run it. torch and transformers stay the machine's own (a CUDA torch cannot travel).
#
# The wheels land in .cache/wheels/: .cache/ is git-ignored and holds the text and weather data too, so the run
# carries the one folder `.cache` (see the docstring of benchmarks/perf/gpu_check.py for the command).
#
#     sh benchmarks/perf/gpu_bundle.sh            # PYTHON=... to use another interpreter's pip
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
DEST=.cache/wheels
mkdir -p "$DEST"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 lion-pytorch==0.2.5 adam-mini==1.1.1
ls -l "$DEST"
if [ ! -d .cache/textdata ] || [ ! -d .cache/sdists ]; then
    echo "gpu_bundle: .cache/ lacks textdata/ or sdists/: run the smoke preset once here (or copy \$SSB_CACHE_DIR in)" >&2
    exit 1
fi
du -sh .cache
