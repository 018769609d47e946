"""Faults (issue 14 items 1-4): suites racing on one --out, a suite's parent killed under its workers, corrupt
checkpoints and corrupt or unusable stores. Real subprocesses of ``run_all.py``, real SQLite files."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import SuiteRequest, run_plan
from benchmarks.cli import main
from benchmarks.planning import plan_suite
from benchmarks.planning.request import parse_optimizers
from benchmarks.running.runner import checkpoint_dir
from benchmarks.store import Store
from tests.benchmarks.support import make_record, make_spec

REPO = Path(__file__).resolve().parents[2]
SUITE = ["--preset", "smoke", "--domains", "quadratic", "--no-outputs", "--set", "quadratic.steps=400"]


def run_all(*args: str, root: Path) -> subprocess.Popen:
    env = {**os.environ, "SSB_RESULTS_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "run_all.py", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def runs_done_here(stderr: str) -> int:
    """How many runs a suite ran itself: those it planned minus those another process stored meanwhile."""
    planned = int(re.search(r"(\d+) to run", stderr).group(1))
    meanwhile = re.search(r"(\d+) run\(s\) were stored meanwhile", stderr)
    return planned - (int(meanwhile.group(1)) if meanwhile else 0)


def test_identical_and_overlapping_suites_on_one_out_store_every_run_once_finished(tmp_path):
    """Two identical suites that checkpoint every 10 steps, and a third that overlaps them, all at once."""
    out = tmp_path / "shared"
    shared = [*SUITE, "--set", "quadratic.checkpoint_every=10", "--out", str(out)]
    same = [*shared, "--optimizers", "adam,stable_spam", "--seeds", "2"]
    overlapping = [*shared, "--optimizers", "adam", "--seeds", "3"]
    processes = [run_all(*same, root=tmp_path), run_all(*same, root=tmp_path), run_all(*overlapping, root=tmp_path)]
    results = [process.communicate(timeout=600) for process in processes]
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr[-3000:]
        assert "failed" not in stderr and " 0 failed" in stdout, stdout + stderr[-3000:]

    with Store(out / "runs.sqlite") as store:
        runs = store.runs()
    # adam and stable_spam x seeds 0-1 (the identical suites) + adam seed 2 (the overlapping one)
    assert len(runs) == 5 and {r["status"] for r in runs} == {"finished"}
    assert sum(runs_done_here(stderr) for _, stderr in results) == 5  # no run was run twice
    assert not any((out / "checkpoints").iterdir())  # every checkpoint folder removed, no scratch file left


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left to collect


def _stored_count(path: Path) -> int:
    if not path.exists():
        return 0
    with Store(path) as store:
        return len(store.statuses())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_killed_parent_and_store_nothing_after(tmp_path):
    out = tmp_path / "killed"
    suite = run_all(*SUITE, "--optimizers", "adam,stable_spam", "--seeds", "2", "--workers", "2", "--set",
                    "quadratic.steps=200000", "--out", str(out), root=tmp_path)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = [pid for pid in _children(suite.pid)
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        time.sleep(0.1)
    assert len(workers) == 2, "the pool's two workers never started"
    time.sleep(2)  # let both start training a run
    os.kill(suite.pid, signal.SIGKILL)
    suite.communicate()
    stored_at_kill = _stored_count(out / "runs.sqlite")

    # A liveness bound, not a timing: without the fix the workers train on for minutes.
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
    assert _stored_count(out / "runs.sqlite") == stored_at_kill == 0


def _quadratic_request(**fields) -> SuiteRequest:
    return SuiteRequest(preset="smoke", domains=("quadratic",), optimizers=parse_optimizers("adam"), seeds=1,
                        sets={"quadratic": {"checkpoint_every": ("50",)}}, **fields)


def _half_checkpoint(path: Path) -> None:
    torch.save({"step": 50, "model": {"x": torch.zeros(4096)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["garbage", "half", "empty", "wrong_keys", "wrong_shapes"])
def test_an_unreadable_checkpoint_is_set_aside_with_a_warning_and_the_run_starts_afresh(tmp_path, caplog, damage):
    request = _quadratic_request()
    clean = run_plan(request, tmp_path / "clean", outputs=False).rows[0]

    out = tmp_path / "damaged"
    run_id = plan_suite(request).specs[0].run_id
    folder = checkpoint_dir(out, run_id)
    folder.mkdir(parents=True)
    path = folder / "checkpoint.pt"
    if damage == "garbage":
        path.write_bytes(b"\x80\x04not a checkpoint at all" * 40)
    elif damage == "half":
        _half_checkpoint(path)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong_keys":
        torch.save({"weights": torch.zeros(3)}, path)
    else:  # the keys of a checkpoint, the tensors of another model
        torch.save({"step": 50, "model": {"x": torch.zeros(7), "h": torch.zeros(7)}, "optimizer": {},
                    "rng_cpu": torch.get_rng_state(), "rng_cuda": [], "run": {}}, path)
    planted = path.read_bytes()

    with caplog.at_level(logging.WARNING, logger="domains.checkpoints"):
        row = run_plan(request, out, outputs=False).rows[0]
    assert row["status"] == "finished"
    assert row["metric_value"] == clean["metric_value"]  # from step 0: the same numbers as an uninterrupted run
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "starts from step 0" in warnings[0]
    kept = list((out / "checkpoints" / "set_aside").glob(f"{run_id}-*/checkpoint.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == planted  # moved aside intact, not deleted
    assert not folder.exists()  # the finished run's own folder is gone as usual


def _store_with_runs(path: Path, count: int = 5) -> None:
    with Store(path) as store:
        for seed in range(count):
            store.write_run(make_record(make_spec(seed=seed), value=float(seed), steps=2000))


@pytest.mark.parametrize("damage", ["garbage", "overwritten_pages", "empty", "folder"])
def test_a_broken_store_is_refused_with_one_line_naming_the_file_and_is_left_as_it_was(tmp_path, monkeypatch,
                                                                                    capsys, damage):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    path = out / "runs.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not an SQLite file\n" * 200)
    elif damage == "overwritten_pages":  # the header and schema intact, the tables' pages destroyed
        _store_with_runs(path)
        data = bytearray(path.read_bytes())
        data[4096:] = b"\xab" * (len(data) - 4096)
        path.write_bytes(bytes(data))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None

    code = main(["--preset", "smoke", "--domains", "quadratic", "--optimizers", "adam", "--seeds", "1",
                 "--no-outputs", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and str(path) in lines[0], lines
    way_out = {"garbage": "move it aside", "overwritten_pages": "move it aside", "empty": "delete it to start a new",
               "folder": "move it aside"}[damage]
    assert way_out in lines[0]
    assert (path.read_bytes() if path.is_file() else None) == before  # nothing written, nothing re-initialised
    assert not (out / "checkpoints").exists()  # no run started


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_store_is_refused_with_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    _store_with_runs(out / "runs.sqlite")
    (out / "runs.sqlite").chmod(0o444)
    out.chmod(0o555)
    try:
        code = main(["--preset", "smoke", "--domains", "quadratic", "--optimizers", "adam", "--seeds", "1",
                     "--no-outputs", "--out", str(out)])
    finally:
        out.chmod(0o755)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert str(out / "runs.sqlite") in lines[0] and "make the file and its folder writable" in lines[0]


def test_a_worse_outcome_never_replaces_a_finished_run(tmp_path):
    spec = make_spec()
    with Store(tmp_path / "runs.sqlite") as store:
        assert store.write_run(make_record(spec, value=3.0))
        assert not store.write_run(make_record(spec, status="failed", value=None))
        assert not store.write_run(make_record(spec, status="diverged", value=None))
        row, = store.runs()
        assert (row["status"], row["metric_value"]) == ("finished", 3.0)
        assert store.write_run(make_record(spec, value=4.0))  # an equal outcome may (--retry-failed re-runs)
        assert store.runs()[0]["metric_value"] == 4.0


def test_a_new_store_is_never_seen_half_created(tmp_path):
    """The store is built under a scratch name and linked into place: no 0-byte file at any moment."""
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    assert path.stat().st_size > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["runs.sqlite"]
    shutil.copy(path, tmp_path / "copy.sqlite")
    with Store(tmp_path / "copy.sqlite") as store:
        assert store.statuses() == {}
