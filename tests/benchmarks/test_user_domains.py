"""A domain written to one file outside the repository runs through the command line (README, "Adding a
domain"), on one process and on a spawned worker pool, and gets the same outputs as a built-in one."""

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DOMAIN_FILE = textwrap.dedent('''
    """A one-file domain: least squares with noisy targets, its noise level a stress axis."""
    from dataclasses import dataclass

    import torch

    import domains
    from domains.base import Domain, RunProfile, StudySpec
    from domains.fields import at_least, check
    from domains.training import TrainLoop, train


    @dataclass
    class LeastSquaresConfig:
        dim: int = 8
        noise: float = 0.0
        steps: int = 40


    @domains.register
    class LeastSquares(Domain):
        name = "least_squares"
        metric = "test_loss"
        Config = LeastSquaresConfig
        presets = {"smoke": {}, "quick": {}, "cpu": {"steps": 200}, "paper": {"steps": 2000}}
        default_study = "noise"
        stress_fields = {"noise": 0.0}

        def validate(self, config):
            check(self.name, at_least(1, config, "dim", "steps"))

        def run_profile(self, config):
            return RunProfile(optimizer_steps=config.steps, base_lr=0.05)

        def studies(self):
            spec = StudySpec(recipes=("adam", "stable_spam"), grid={"noise": (0.0, 1.0)}, seeds=2)
            return {"noise": {preset: spec for preset in ("smoke", "quick")}}

        def run(self, config, ctx):
            generator = torch.Generator().manual_seed(ctx.seed)
            truth = torch.randn(config.dim, generator=generator)
            inputs = torch.randn(64, config.dim, generator=generator)
            targets = inputs @ truth + config.noise * torch.randn(64, generator=generator)
            model = torch.nn.Linear(config.dim, 1, bias=False)

            def loss_fn(model, batch):
                return torch.nn.functional.mse_loss(model(batch[0]).squeeze(-1), batch[1])

            def evaluate(model, step):
                return {"test_loss": float(((model.weight[0] - truth) ** 2).sum())}

            return train(model, lambda step: (inputs, targets), loss_fn, evaluate, TrainLoop(steps=config.steps), ctx)
''')


def run_all(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSB_RESULTS_ROOT": str(cwd / "results")}
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_domain_in_one_file_runs_through_the_command_line_with_its_outputs(tmp_path):
    module = tmp_path / "elsewhere" / "least_squares.py"
    module.parent.mkdir()
    module.write_text(DOMAIN_FILE)
    out = tmp_path / "out"
    done = run_all("--domain-module", str(module), "--domains", "least_squares", "--preset", "smoke",
                   "--out", str(out), "--workers", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 8 and progress[-1].startswith("[8/8] least_squares noise=")
    assert all(": test_loss " in line for line in progress)
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and {r["domain"] for r in rows} == {"least_squares"}
    assert {r["status"] for r in rows} == {"finished"}
    assert {r["info.torch_threads"] for r in rows} == {"1"} and all(r["info.load_start"] for r in rows)
    table = (out / "tables" / "noise_least_squares_degradation_noise.md").read_text()
    assert "| stable_spam |" in table and "noise=1: − adam's" in table
    assert (out / "plots" / "noise_least_squares_smoke_degradation_noise.png").is_file()
    assert "least_squares" in (out / "report.md").read_text()


def test_an_unloadable_or_empty_domain_module_is_one_line_of_bad_input(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    for target, message in ((tmp_path / "missing.py", "no such file"), (empty, "registers no domain")):
        done = run_all("--domain-module", str(target), "--preset", "smoke", "--dry-run", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr
    done = run_all("--domains", "least_squares", "--preset", "smoke", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and "--domain-module" in done.stderr
