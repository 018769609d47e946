"""The SQLite store: atomic runs under SIGKILL, concurrent writers, resume semantics, compact curves."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.errors import StoreUnusable
from benchmarks.store import SCHEMA_VERSION, Store
from tests.benchmarks.support import SERIES, make_record, make_spec, write_many

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _run_count(path: Path) -> int:
    if not path.exists():  # connecting would create an empty file, which the store refuses to open
        return 0
    try:
        with sqlite3.connect(path, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_round_trip_of_a_run_and_its_curves(tmp_path):
    spec = make_spec(seed=3, studies=("main", "lr_sweep"))
    record = make_record(spec, value=0.25, steps=20_000)
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(record)
        (row,) = store.runs()
        curves = store.curves(spec.run_id)
        env = store.environment(spec.run_id)
    assert row["run_id"] == spec.run_id and row["status"] == "finished" and row["metric_value"] == 0.25
    assert row["studies"] == ["lr_sweep", "main"] and row["config"] == {"steps": 100}
    assert len(curves) == len(SERIES) + 1
    original = record.curves[("train", "loss")]
    assert np.array_equal(curves[("train", "loss")].steps, original.steps)
    assert np.array_equal(curves[("train", "loss")].values, original.values)
    assert env["hostname"] == "test" and "numpy" in env["packages"]


def test_rewriting_a_run_replaces_it_and_keeps_its_studies(tmp_path):
    spec = make_spec()
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(make_record(spec, status="failed", value=None))
        store.add_studies([("ablation", spec.run_id)])
        store.write_run(make_record(spec, value=2.0))  # e.g. --retry-failed
        rows = store.runs()
        assert store.statuses() == {spec.run_id: "finished"}
        assert len(store.curves(spec.run_id)) == len(SERIES) + 1
    assert len(rows) == 1 and rows[0]["studies"] == ["ablation", "main"]


def test_schema_version_is_checked(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema").fetchone()[0] == SCHEMA_VERSION
        conn.execute("UPDATE schema SET version = 999")
    with pytest.raises(StoreUnusable, match="schema version 999"):
        Store(path)


def test_a_writer_killed_mid_write_leaves_whole_runs_only(tmp_path):
    path = tmp_path / "runs.sqlite"
    for attempt in range(3):
        before = _run_count(path)
        writer = subprocess.Popen([sys.executable, str(HERE / "support.py"), str(path)],
                                  cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while _run_count(path) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.013 * (attempt + 1))  # land somewhere inside the next write
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = {r for (r,) in conn.execute("SELECT run_id FROM runs")}
        curves = dict(conn.execute("SELECT run_id, COUNT(*) FROM curves GROUP BY run_id"))
        points = {n for (n,) in conn.execute("SELECT DISTINCT n FROM curves WHERE kind = 'train'")}
        envs = {r for (r,) in conn.execute("SELECT run_id FROM environment")}
    assert len(runs) >= 2
    assert set(curves) == runs and envs == runs  # no orphan curves, no run without its curves
    assert set(curves.values()) == {len(SERIES) + 1} and points == {20_000}


def test_concurrent_writers_from_a_process_pool(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    Store(path).close()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        ids = pool.starmap(write_many, [(path, worker, 12) for worker in range(3)])
    with Store(path) as store:
        rows = store.runs()
        assert {r["run_id"] for r in rows} == {i for worker in ids for i in worker}
        assert len(rows) == 36
        for run_id in ids[1][:3]:
            assert len(store.curves(run_id)) == len(SERIES) + 1
