"""The store: every run, its per-step curves and its environment in one SQLite file, one transaction per run."""

from benchmarks.store.records import Curve, RunRecord
from benchmarks.store.run_locks import RunLock
from benchmarks.store.schema import SCHEMA_VERSION, STATUSES
from benchmarks.store.sqlite_store import Store

__all__ = ["Curve", "RunLock", "RunRecord", "SCHEMA_VERSION", "STATUSES", "Store"]
