"""Running suites end to end: outputs, resume, divergence, failures, process pool, SIGKILL and Ray."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import domains
from benchmarks import cli
from benchmarks.store import Store
from domains.base import Domain, StudySpec

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--preset", "smoke", "--domains", "quadratic"]


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    return tmp_path / "results"


def no_checkpoints_left(out: Path) -> bool:
    folder = out / "checkpoints"
    return not folder.exists() or not any(folder.iterdir())


def stored(out: Path) -> list[dict]:
    with Store(out / "runs.sqlite") as store:
        return store.runs()


def test_a_smoke_suite_on_a_process_pool_writes_every_output_and_resumes_without_rework(out, capsys):
    argv = SMOKE + ["--optimizers", "adam,stable_spam", "--seeds", "2", "--workers", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    runs = stored(out)
    assert len(runs) == 4 and {r["status"] for r in runs} == {"finished"}
    assert {(r["recipe"], r["seed"]) for r in runs} == {("adam", 0), ("adam", 1), ("stable_spam", 0), ("stable_spam", 1)}
    for name in ("runs.sqlite", "runs.csv", "runs.parquet", "report.md", "tables/main_quadratic.md",
                 "tables/main_quadratic.tex", "plots/main_quadratic_smoke_loss.png",
                 "plots/main_quadratic_smoke_grad_norm.png", "plots/performance_profile.png"):
        assert (out / name).is_file(), name
    assert no_checkpoints_left(out)
    with Store(out / "runs.sqlite") as store:
        curve = store.curve(runs[0]["run_id"], "train", "loss")
        env = store.environment(runs[0]["run_id"])
    assert len(curve.steps) == 200 and env["torch"] and env["python"] and env["device"] == "cpu"
    assert "4 finished, 0 diverged, 0 failed" in capsys.readouterr().out

    assert cli.main(argv) == 0  # again: nothing new runs, nothing changes
    assert "4 already stored, 0 to run" in capsys.readouterr().err
    assert [(r["run_id"], r["finished_at"]) for r in stored(out)] == [(r["run_id"], r["finished_at"]) for r in runs]


def test_divergence_is_recorded_and_the_suite_exits_0(out):
    assert cli.main(SMOKE + ["--optimizers", "adam:lr=1e6,adam", "--out", str(out), "--no-outputs"]) == 0
    by_lr = {r["lr"]: r for r in stored(out)}
    assert by_lr[1e6]["status"] == "diverged" and by_lr[1e6]["diverged_step"] >= 0
    assert by_lr[1e6]["metric_value"] is None and "initial" in by_lr[1e6]["error"]
    default_lr = domains.get("quadratic").default_hparams("adam", domains.get("quadratic").config("smoke"))["lr"]
    assert by_lr[default_lr]["status"] == "finished"


@dataclass
class FlakyConfig:
    steps: int = 3


class FlakyDomain(Domain):
    """Fails while ``broken`` is set (a crashing run), finishes otherwise."""

    name = "flaky_test_domain"
    metric = "score"
    Config = FlakyConfig
    presets = {p: {} for p in ("smoke", "quick", "cpu", "paper")}
    broken = True

    def studies(self):
        return {"main": {"smoke": StudySpec(recipes=("adam",))}}

    def run(self, config, ctx):
        ctx.logger.log_step(0, {"loss": 1.0})
        if FlakyDomain.broken:
            raise RuntimeError("simulated crash\nsecond line")
        return {"score": 0.5}


def test_a_crashing_run_is_recorded_as_failed_and_can_be_retried(out, capsys):
    domains.register(FlakyDomain)
    argv = ["--preset", "smoke", "--domains", "flaky_test_domain", "--out", str(out)]
    assert cli.main(argv + ["--no-outputs"]) == 0
    (run,) = stored(out)
    assert run["status"] == "failed" and run["error"] == "RuntimeError: simulated crash second line"
    assert "Traceback" in run["traceback"] and "simulated crash" in run["traceback"]
    assert "1 failed" in capsys.readouterr().out
    FlakyDomain.broken = False
    assert cli.main(argv + ["--no-outputs"]) == 0  # failed runs are skipped without --retry-failed
    assert stored(out)[0]["status"] == "failed"
    assert cli.main(argv + ["--retry-failed"]) == 0
    (run,) = stored(out)
    assert run["status"] == "finished" and run["metric_value"] == 0.5 and run["error"] is None
    assert "Failed runs" not in (out / "report.md").read_text()


def _count(path: Path, status: str = "finished") -> int:
    try:
        with sqlite3.connect(path, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_suite_killed_half_way_resumes_and_runs_everything_once(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "run_all.py", *SMOKE, "--optimizers", "adam,stable_spam", "--seeds", "2",
               "--set", "quadratic.steps=600", "--set", "quadratic.checkpoint_every=100", "--out", str(out),
               "--no-outputs"]
    env = {**os.environ, "SSB_RESULTS_ROOT": str(tmp_path)}
    suite = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _count(out / "runs.sqlite") < 2 and time.monotonic() < deadline and suite.poll() is None:
        time.sleep(0.05)
    os.kill(suite.pid, signal.SIGKILL)
    suite.wait()
    before = {r["run_id"]: r["finished_at"] for r in stored(out)}
    assert 2 <= len(before) < 4, "the kill should land half-way"

    assert subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0
    after = stored(out)
    assert len(after) == 4 and {r["status"] for r in after} == {"finished"}
    assert all(r["finished_at"] == before[r["run_id"]] for r in after if r["run_id"] in before)  # not re-run
    assert no_checkpoints_left(out)


@pytest.mark.skipif(os.environ.get("SSB_SKIP_RAY") == "1", reason="SSB_SKIP_RAY=1: Ray start-up skipped")
def test_the_ray_backend_runs_quadratic_runs_on_a_local_instance(out, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    argv = SMOKE + ["--optimizers", "adam", "--seeds", "2", "--backend", "ray", "--workers", "1", "--out", str(out),
                    "--no-outputs"]  # one CPU: one Ray worker process runs both tasks
    assert cli.main(argv) == 0
    runs = stored(out)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"finished"}
