"""The results store: one SQLite file (``OUT/runs.sqlite``) holding runs, per-step curves and metadata
(schema: :mod:`benchmarks.store.schema`).

Every run is written in ONE transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a process killed at any moment
leaves either the whole run or nothing, and never touches earlier runs. WAL journaling and a busy timeout let
several processes (the process pool's workers, or two suites on one ``--out``) write concurrently.

A stored run is never replaced by a worse outcome: ``failed`` < ``diverged`` < ``finished`` (see
:meth:`Store.write_run`). A new store file is built under a scratch name and linked into place complete, so
another process never sees a half-created store; an existing file that is empty (0 bytes), corrupt or
read-only is refused with :class:`~benchmarks.errors.StoreUnusable` (one line: the file and a way out), never
silently re-initialised over results it may have held.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from benchmarks.errors import StoreUnusable
from benchmarks.planning.run_spec import canonical_json
from benchmarks.store.records import Curve, RunRecord
from benchmarks.store.schema import ENV_COLUMNS, RUN_COLUMNS, SCHEMA_SQL, SCHEMA_VERSION, STATUSES

BUSY_TIMEOUT_S = 120.0
STATUS_RANK = {"failed": 0, "diverged": 1, "finished": 2}  # a stored run is replaced only by an equal or better one


class Store:
    """The SQLite results store at ``path`` (created with its schema on first use).

    Raises :class:`~benchmarks.errors.StoreUnusable` when the file cannot serve as a store (and from any method
    when SQLite reports the file corrupt, read-only or locked for longer than the busy timeout).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with _explained(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                _create_store(self.path)
            elif not self.path.is_file():
                raise StoreUnusable(f"{self.path}: not a file, so it cannot be the results store; move it aside or "
                                    f"use another --out")
            elif self.path.stat().st_size == 0:
                raise StoreUnusable(
                    f"{self.path}: the results store is empty (0 bytes), so any runs it held are lost; it is left as "
                    f"it is: restore it from a backup, or delete it to start a new store there")
            self._conn = _connect(self.path)
            try:
                self._create_schema()
            except BaseException:
                self._conn.close()
                raise

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
            if self._conn.in_transaction:
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
                raise StoreUnusable(f"{self.path}: store schema version {row[0]}, this code reads {SCHEMA_VERSION}; "
                                    f"use the code that wrote it, or another --out")

    # --- writing ---------------------------------------------------------------------------------------

    def write_run(self, record: RunRecord) -> bool:
        """Write one run with its curves, studies and environment, atomically; True when written.

        A run already stored with a better status (``finished`` > ``diverged`` > ``failed``) is kept as it is
        (False; the record's studies are still added): a worse outcome never replaces a better one.
        """
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
            conn.executemany("INSERT OR IGNORE INTO study_runs (study, run_id) VALUES (?, ?)",
                             [(study, spec.run_id) for study in spec.studies])
            stored = conn.execute("SELECT status FROM runs WHERE run_id = ?", (spec.run_id,)).fetchone()
            if stored is not None and STATUS_RANK[record.status] < STATUS_RANK[stored[0]]:
                return False  # e.g. a concurrent attempt that failed after another process finished the run
            conn.execute("DELETE FROM curves WHERE run_id = ?", (spec.run_id,))
            conn.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                [row[c] for c in RUN_COLUMNS],
            )
            conn.executemany("INSERT INTO curves (run_id, kind, name, n, steps, vals) VALUES (?, ?, ?, ?, ?, ?)", curve_rows)
            conn.execute(
                f"INSERT OR REPLACE INTO environment (run_id, {', '.join(ENV_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(ENV_COLUMNS))})",
                [spec.run_id] + [env[c] for c in ENV_COLUMNS],
            )
        return True

    def add_studies(self, memberships: Iterable[tuple[str, str]]) -> None:
        """Record that (study, run_id) pairs asked for runs already in the store."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO study_runs (study, run_id) VALUES (?, ?)", list(memberships))

    # --- reading ---------------------------------------------------------------------------------------

    def status(self, run_id: str) -> str | None:
        """The stored status of one run, or None when it is not stored."""
        row = self._conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

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



def _connect(path: Path) -> "_GuardedConnection":
    """A connection with the store's settings, whose errors name the file (:class:`_GuardedConnection`)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    guarded = _GuardedConnection(conn, path)
    guarded.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    guarded.execute("PRAGMA journal_mode = WAL")
    guarded.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
    return guarded


def _create_store(path: Path) -> None:
    """Build an empty store under a scratch name and link it to ``path`` (no-op when another process won)."""
    for suffix in ("-wal", "-journal"):
        stale = path.with_name(path.name + suffix)
        if stale.exists() and stale.stat().st_size > 0:
            raise StoreUnusable(f"{stale}: a journal without its store {path.name}; move it aside (it may hold runs "
                                f"of a deleted store) and run again")
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        conn = _connect(scratch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA_SQL.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        finally:
            conn.close()  # the last connection: SQLite folds the WAL into the file and deletes it
        try:
            os.link(scratch, path)  # never replaces a store another process created meanwhile
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: a rename (the race it leaves is harmless here)
            if not path.exists():
                os.replace(scratch, path)
    finally:
        for leftover in (scratch, scratch.with_name(scratch.name + "-wal"), scratch.with_name(scratch.name + "-shm")):
            leftover.unlink(missing_ok=True)


@contextmanager
def _explained(path: Path) -> Iterator[None]:
    """Turn SQLite and filesystem errors about the store into one-line :class:`StoreUnusable` errors."""
    try:
        yield
    except StoreUnusable:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnusable(_explain(path, exc)) from exc


def _explain(path: Path, exc: BaseException) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    lowered = message.lower()
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return (f"{path}: the results store is corrupt ({message}); move it aside (`sqlite3 {path.name} .recover` "
                f"may salvage its runs) and run again to start a new store, or use another --out")
    if "readonly" in lowered or "read-only" in lowered or isinstance(exc, PermissionError) \
            or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return (f"{path}: the results store cannot be written ({message}); make the file and its folder "
                f"writable, or use another --out")
    if "locked" in lowered or "busy" in lowered:
        return (f"{path}: the results store stayed locked for {BUSY_TIMEOUT_S:g} s ({message}); another process "
                f"holds it: wait for it, or use another --out")
    return f"{path}: the results store cannot be used ({type(exc).__name__}: {message}); use another --out"


class _GuardedConnection:
    """A sqlite3 connection whose statements (and the rows read from them) raise :class:`StoreUnusable`
    naming the file instead of a bare ``DatabaseError``."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn, self._path = conn, path

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return self._conn.in_transaction

    def execute(self, sql: str, params: Any = ()) -> "_GuardedCursor":
        """``Connection.execute``, errors explained."""
        with _explained(self._path):
            return _GuardedCursor(self._conn.execute(sql, params), self._path)

    def executemany(self, sql: str, rows: Iterable) -> None:
        """``Connection.executemany``, errors explained."""
        with _explained(self._path):
            self._conn.executemany(sql, rows)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class _GuardedCursor:
    """A cursor whose row fetching raises :class:`StoreUnusable` naming the file."""

    def __init__(self, cursor: sqlite3.Cursor, path: Path):
        self._cursor, self._path = cursor, path

    def fetchone(self) -> Any:
        """The next row, or None."""
        with _explained(self._path):
            return self._cursor.fetchone()

    def __iter__(self) -> Iterator[Any]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row
