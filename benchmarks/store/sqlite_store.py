"""The results store: one SQLite file (``OUT/runs.sqlite``) holding runs, per-step curves and metadata
(schema: :mod:`benchmarks.store.schema`).

Every run is written in ONE transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a process killed at any moment
leaves either the whole run or nothing, and never touches earlier runs. WAL journaling and a busy timeout let
several processes (the process pool's workers) write concurrently.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from benchmarks.planning.run_spec import canonical_json
from benchmarks.store.records import Curve, RunRecord
from benchmarks.store.schema import ENV_COLUMNS, RUN_COLUMNS, SCHEMA_SQL, SCHEMA_VERSION, STATUSES

BUSY_TIMEOUT_S = 120.0


class Store:
    """The SQLite results store at ``path`` (created with its schema on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
        self._create_schema()

    @classmethod
    def open_existing(cls, path: str | Path) -> "Store":
        """Open a store that must already exist (FileNotFoundError otherwise); for read-only consumers."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results store at {path}")
        return cls(path)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._transaction() as conn:
            for statement in SCHEMA_SQL.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT version FROM schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: store schema version {row[0]}, this code reads {SCHEMA_VERSION}")

    # --- writing ---------------------------------------------------------------------------------------

    def write_run(self, record: RunRecord) -> None:
        """Write (or replace) one run with its curves, studies and environment, atomically."""
        spec = record.spec
        if record.status not in STATUSES:
            raise ValueError(f"unknown run status {record.status!r}")
        row = {
            "run_id": spec.run_id,
            "domain": spec.domain,
            "preset": spec.preset,
            "recipe": spec.recipe,
            "variant": spec.variant,
            "lr": spec.lr,
            "seed": spec.seed,
            "budget": record.budget if record.budget is not None else spec.budget,
            "budget_unit": record.budget_unit,
            "hparams": canonical_json(spec.hparams),
            "config": canonical_json(record.config if record.config is not None else spec.config),
            "overrides": canonical_json(spec.overrides),
            "status": record.status,
            "diverged_step": record.diverged_step,
            "error": record.error,
            "traceback": record.traceback,
            "metric": record.metric,
            "metric_value": _finite_or_none(record.metric_value),
            "higher_is_better": int(record.higher_is_better),
            "final_metrics": canonical_json(record.final_metrics),
            "info": canonical_json(record.info),
            "wall_seconds": record.wall_seconds,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
        }
        env = {key: record.environment.get(key) for key in ENV_COLUMNS}
        env["packages"] = canonical_json(env["packages"] or {})
        curve_rows = [
            (spec.run_id, kind, name, len(curve.steps), _blob(curve.steps, "<i8"), _blob(curve.values, "<f8"))
            for (kind, name), curve in sorted(record.curves.items())
        ]
        with self._transaction() as conn:
            conn.execute("DELETE FROM curves WHERE run_id = ?", (spec.run_id,))
            conn.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                [row[c] for c in RUN_COLUMNS],
            )
            conn.executemany("INSERT INTO curves (run_id, kind, name, n, steps, vals) VALUES (?, ?, ?, ?, ?, ?)", curve_rows)
            conn.executemany("INSERT OR IGNORE INTO study_runs (study, run_id) VALUES (?, ?)",
                             [(study, spec.run_id) for study in spec.studies])
            conn.execute(
                f"INSERT OR REPLACE INTO environment (run_id, {', '.join(ENV_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(ENV_COLUMNS))})",
                [spec.run_id] + [env[c] for c in ENV_COLUMNS],
            )

    def add_studies(self, memberships: Iterable[tuple[str, str]]) -> None:
        """Record that (study, run_id) pairs asked for runs already in the store."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO study_runs (study, run_id) VALUES (?, ?)", list(memberships))

    # --- reading ---------------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        """run_id -> status of every stored run."""
        return dict(self._conn.execute("SELECT run_id, status FROM runs"))

    def runs(self) -> list[dict[str, Any]]:
        """Every stored run as a dict of its columns (JSON columns decoded), plus its ``studies`` list."""
        studies: dict[str, list[str]] = {}
        for study, run_id in self._conn.execute("SELECT study, run_id FROM study_runs ORDER BY study"):
            studies.setdefault(run_id, []).append(study)
        cursor = self._conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY domain, preset, recipe, lr, seed")
        rows = []
        for values in cursor:
            row = dict(zip(RUN_COLUMNS, values))
            for key in ("hparams", "config", "overrides", "final_metrics", "info"):
                row[key] = json.loads(row[key])
            row["higher_is_better"] = bool(row["higher_is_better"])
            row["studies"] = studies.get(row["run_id"], [])
            rows.append(row)
        return rows

    def curves(self, run_id: str, kind: str | None = None) -> dict[tuple[str, str], Curve]:
        """(kind, name) -> Curve of one run (all kinds when ``kind`` is None)."""
        query = "SELECT kind, name, steps, vals FROM curves WHERE run_id = ?"
        params: list[Any] = [run_id]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        return {
            (k, name): Curve(np.frombuffer(steps, dtype="<i8").copy(), np.frombuffer(vals, dtype="<f8").copy())
            for k, name, steps, vals in self._conn.execute(query, params)
        }

    def curve(self, run_id: str, kind: str, name: str) -> Curve | None:
        """One series of one run, or None when it was not logged."""
        return self.curves_named(kind, name, [run_id]).get(run_id)

    def curves_named(self, kind: str, name: str, run_ids: Iterable[str]) -> dict[str, Curve]:
        """run_id -> Curve of series ``name`` for each of ``run_ids`` that logged it."""
        return dict(self.iter_curves(kind, name, run_ids))

    def iter_curves(self, kind: str, name: str, run_ids: Iterable[str]) -> Iterator[tuple[str, Curve]]:
        """(run_id, Curve) of series ``name`` for each of ``run_ids`` that logged it, a few at a time in memory."""
        for chunk in _id_chunks(run_ids):
            query = (f"SELECT run_id, steps, vals FROM curves WHERE kind = ? AND name = ? "
                     f"AND run_id IN ({', '.join('?' * len(chunk))})")
            for run_id, steps, vals in self._conn.execute(query, [kind, name, *chunk]):
                yield run_id, Curve(np.frombuffer(steps, dtype="<i8").copy(), np.frombuffer(vals, dtype="<f8").copy())

    def curve_names(self, kind: str, run_ids: Iterable[str], prefix: str = "") -> list[str]:
        """Sorted names of the ``kind`` series that any of ``run_ids`` logged, starting with ``prefix``."""
        names = set()
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        for chunk in _id_chunks(run_ids):
            query = (f"SELECT DISTINCT name FROM curves WHERE kind = ? AND name LIKE ? ESCAPE '\\' "
                     f"AND run_id IN ({', '.join('?' * len(chunk))})")
            names.update(name for (name,) in self._conn.execute(query, [kind, pattern, *chunk]))
        return sorted(name for name in names if name.startswith(prefix))  # LIKE ignores ASCII case

    def environment(self, run_id: str) -> dict[str, Any]:
        """The environment row of one run (``packages`` decoded), or {} when absent."""
        cursor = self._conn.execute(f"SELECT {', '.join(ENV_COLUMNS)} FROM environment WHERE run_id = ?", (run_id,))
        values = cursor.fetchone()
        if values is None:
            return {}
        env = dict(zip(ENV_COLUMNS, values))
        env["packages"] = json.loads(env["packages"] or "{}")
        return env


def _id_chunks(run_ids: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    """``run_ids`` in lists of at most ``size``: queries stay under SQLite's host-parameter limit."""
    ids = list(run_ids)
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _blob(values: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(np.asarray(values, dtype=dtype)).tobytes()


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None

