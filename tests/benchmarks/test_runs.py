"""Running plans end to end through `benchmarks.run_plan`: outputs, resume, divergence, failures, budgets,
process pool and Ray; and the command line killed with SIGKILL half-way."""

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
from benchmarks import SuiteRequest, run_plan
from benchmarks.planning.request import parse_optimizers
from benchmarks.protocol.hparams import default_hparams
from benchmarks.store import Store
from domains.base import Domain, StudySpec
from tests.support.registry import registered

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--preset", "smoke", "--domains", "quadratic"]


def quadratic(**fields) -> SuiteRequest:
    """A smoke request on the quadratic domain; ``optimizers`` given as ``--optimizers`` text."""
    if "optimizers" in fields:
        fields["optimizers"] = parse_optimizers(fields["optimizers"])
    return SuiteRequest(preset="smoke", domains=("quadratic",), **fields)


@pytest.fixture
def out(tmp_path):
    return tmp_path / "results"


def no_checkpoints_left(out: Path) -> bool:
    folder = out / "checkpoints"
    return not folder.exists() or not any(folder.iterdir())


def stored(out: Path) -> list[dict]:
    with Store(out / "runs.sqlite") as store:
        return store.runs()


def test_a_smoke_suite_on_a_process_pool_writes_every_output_and_resumes_without_rework(out):
    request = quadratic(optimizers="adam,stable_spam", seeds=2)
    result = run_plan(request, out, workers=2)
    runs = stored(out)
    assert sorted(r["run_id"] for r in result.rows) == sorted(r["run_id"] for r in runs)
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
    assert result.counts == {"finished": 4, "diverged": 0, "failed": 0} and result.already_stored == 0
    assert {r["budget"] for r in runs} == {200}  # the run length each run used, the config's steps

    again = run_plan(request, out, workers=2)  # nothing new runs, nothing changes
    assert again.already_stored == 4 and again.counts["finished"] == 4
    assert [(r["run_id"], r["finished_at"]) for r in stored(out)] == [(r["run_id"], r["finished_at"]) for r in runs]


def test_divergence_is_recorded_and_the_suite_goes_on(out):
    result = run_plan(quadratic(optimizers="adam:lr=1e6,adam"), out, outputs=False)
    assert result.counts == {"finished": 1, "diverged": 1, "failed": 0} and not (out / "report.md").exists()
    by_lr = {r["lr"]: r for r in stored(out)}
    assert by_lr[1e6]["status"] == "diverged" and by_lr[1e6]["diverged_step"] >= 0
    assert by_lr[1e6]["metric_value"] is None and "initial" in by_lr[1e6]["error"]
    default_lr = default_hparams(domains.get("quadratic"), "adam", domains.get("quadratic").config("smoke"))["lr"]
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


@pytest.fixture
def flaky(monkeypatch):
    monkeypatch.setattr(FlakyDomain, "broken", True)
    with registered(FlakyDomain) as domain:
        yield domain


def test_a_crashing_run_is_recorded_as_failed_and_can_be_retried(out, flaky):
    request = SuiteRequest(preset="smoke", domains=("flaky_test_domain",))
    result = run_plan(request, out, outputs=False)
    (run,) = stored(out)
    assert run["status"] == "failed" and run["error"] == "RuntimeError: simulated crash second line"
    assert "Traceback" in run["traceback"] and "simulated crash" in run["traceback"]
    assert result.counts["failed"] == 1 and result.failed[0]["run_id"] == run["run_id"]
    FlakyDomain.broken = False
    assert run_plan(request, out, outputs=False).already_stored == 1  # failed runs are skipped without retry
    assert stored(out)[0]["status"] == "failed"
    run_plan(request, out, retry_failed=True)
    (run,) = stored(out)
    assert run["status"] == "finished" and run["metric_value"] == 0.5 and run["error"] is None
    assert "Failed runs" not in (out / "report.md").read_text()


def _count(path: Path, status: str = "finished") -> int:
    if not path.exists():  # connecting would create an empty file, which the store refuses to open
        return 0
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
    # one CPU: one Ray worker process runs both tasks
    run_plan(quadratic(optimizers="adam", seeds=2), out, backend="ray", workers=1, outputs=False)
    runs = stored(out)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"finished"}


def test_a_budget_is_the_run_length_the_domain_sees_and_the_store_records(out):
    """A suite budget goes into the config's budget field: the run trains that many steps, the store holds the
    config it ran with and the budget; the run id is the one a budget always had (config without it + budget)."""
    result = run_plan(quadratic(optimizers="adam", budgets={"quadratic": 37}), out, outputs=False)
    (spec,) = result.plan.specs
    assert spec.budget == 37 and spec.config["steps"] == 200 and spec.overrides == {"steps": 37}
    (run,) = stored(out)
    assert run["status"] == "finished" and run["budget"] == 37 and run["config"]["steps"] == 37
    with Store(out / "runs.sqlite") as store:
        loss = store.curve(run["run_id"], "train", "loss")
    assert loss.steps.tolist() == list(range(37))


def test_a_dry_run_plans_and_writes_nothing(out):
    result = run_plan(quadratic(seeds=2), out, dry_run=True)
    assert len(result.plan.specs) == 8 and result.rows == [] and not out.exists()
