"""Bad input through the command line (SPEC §6): every case exits with code 2 and one line naming the problem,
and nothing is stored. The cases are those of issue 14 (items 6 and 7): values no domain code can honour, suite
files that are hostile (YAML alias bombs, deep nesting, non-UTF-8) or malformed, suites too large to expand."""

from __future__ import annotations

import pytest

from benchmarks.cli import main

QUADRATIC = ["--preset", "smoke", "--domains", "quadratic", "--optimizers", "adam", "--seeds", "1", "--no-outputs"]

ALIAS_BOMB = """\
preset: [&a [x, x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a],
  &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], &d [*c, *c, *c, *c, *c, *c, *c, *c, *c],
  &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], &f [*e, *e, *e, *e, *e, *e, *e, *e, *e],
  &g [*f, *f, *f, *f, *f, *f, *f, *f, *f], &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]]
"""


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``run_all.py`` in this process with ``--out`` in a temporary results root; returns (code, stderr)."""
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    out = tmp_path / "out"

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([*args, "--out", str(out)])
        return code, capsys.readouterr().err

    run.out = out
    return run


def suite(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def assert_refused(code: int, err: str, out, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 400, err[:2000]
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (out / "runs.sqlite").exists()  # nothing stored, no store even created


@pytest.mark.parametrize("setting, fragment", [
    ("quadratic.warmup=-3", "field 'warmup' must be >= 0"),
    ("quadratic.warmup=2.5", "field 'warmup' must be a fraction < 1 or a whole step count"),
    ("quadratic.warmup=500", "field 'warmup' must be at most steps (200)"),
    ("quadratic.eval_every=-1", "field 'eval_every' must be >= 0"),
    ("quadratic.checkpoint_every=-5", "field 'checkpoint_every' must be >= 0"),
    ("quadratic.steps=0", "field 'steps' must be >= 1"),
    ("quadratic.steps=-5", "field 'steps' must be >= 1"),
    ("quadratic.noise_scale=inf", "field 'noise_scale' must be a finite number (got inf)"),
    ("quadratic.condition_number=-inf", "field 'condition_number' must be a finite number"),
    ("quadratic.warmup=nan", "field 'warmup' must be a finite number (got nan)"),
    ("quadratic.steps=inf", "field 'steps' cannot take 'inf'"),
    ("quadratic.spike_prob=1.5", "field 'spike_prob' must be in [0, 1]"),
])
def test_quadratic_values_its_code_cannot_honour_are_refused(cli, setting, fragment):
    assert_refused(*cli(*QUADRATIC, "--set", setting), cli.out, f"--set: quadratic: {fragment}")


@pytest.mark.parametrize("domain, setting, fragment", [
    ("llama", "steps=0", "field 'steps' must be >= 1"),
    ("llama", "warmup=-1", "field 'warmup' must be >= 0"),
    ("llama", "warmup=141", "field 'warmup' must be at most steps (140)"),
    ("llama", "eval_every=-1", "field 'eval_every' must be >= 0"),
    ("llama", "checkpoint_every=-5", "field 'checkpoint_every' must be >= 0"),
    ("llama", "min_lr_ratio=inf", "field 'min_lr_ratio' must be a finite number"),
    ("llama", "vocab_size=10", "field 'vocab_size' must be >= 300"),
    ("moe", "steps=-5", "field 'steps' must be >= 1"),
    ("moe", "checkpoint_every=-1", "field 'checkpoint_every' must be >= 0"),
    ("moe", "router_aux_loss_coef=-1", "field 'router_aux_loss_coef' must be >= 0"),
    ("weather", "steps=0", "field 'steps' must be >= 1"),
    ("weather", "warmup=-0.5", "field 'warmup' must be >= 0"),
    ("weather", "eval_every=-1", "field 'eval_every' must be >= 0"),
    ("weather", "severity=inf", "field 'severity' must be a finite number"),
    ("weather", "dropout=1", "field 'dropout' must be in [0, 1)"),
    ("mujoco", "steps=0", "field 'steps' must be >= 1"),
    ("mujoco", "eval_every=-1", "field 'eval_every' must be >= 0"),
    ("mujoco", "checkpoint_every=-5", "field 'checkpoint_every' must be >= 0"),
    ("mujoco", "gamma=1.5", "field 'gamma' must be in (0, 1]"),
    ("mujoco", "tau=0", "field 'tau' must be in (0, 1]"),
    ("mujoco", "clip_range=-0.2", "field 'clip_range' must be > 0"),
    ("mujoco", "max_grad_norm=inf", "field 'max_grad_norm' must be a finite number"),
    ("mujoco", "batch_size=1", "field 'batch_size' must be > 1 for PPO"),
    ("mujoco", "gradient_steps=0", "field 'gradient_steps' must be >= 1, or -1"),
])
def test_every_domain_refuses_values_its_code_cannot_honour(cli, domain, setting, fragment):
    code, err = cli("--preset", "smoke", "--domains", domain, "--optimizers", "adam", "--seeds", "1",
                    "--no-outputs", "--set", f"{domain}.{setting}")
    assert_refused(code, err, cli.out, f"--set: {domain}: {fragment}")


@pytest.mark.parametrize("content, fragment", [
    ("[budget]\nquadratic = -5\n", "key 'budget.quadratic' must be at least 1, got -5"),
    ("[budget]\nquadratic = 0\n", "key 'budget.quadratic' must be at least 1, got 0"),
    ("[budget]\nquadratic = 2.5\n", "key 'budget.quadratic' must be an integer, got 2.5"),
    ("[budget]\nnosuch = 5\n", "budget.'nosuch': unknown domain"),
    ("[set.quadratic]\nwarmup = -3\n", "set: quadratic: field 'warmup' must be >= 0"),
    ("[set.quadratic]\nnoise_scale = inf\n", "set: quadratic: field 'noise_scale' must be a finite number"),
    ("[set.quadratic]\nwarmup = nan\n", "set: quadratic: field 'warmup' must be a finite number"),
    ("optimizer = 5\n", "key 'optimizer' must be a list of optimizer names or tables, got 5"),
    ("optimizers = 5\n", "key 'optimizers' must be a list of optimizer names or tables, got 5"),
    ("seeds = 100000000\n", "seeds: 100000000 seeds make more runs than a suite may hold"),
    ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "values nested too deeply"),
])
def test_a_bad_toml_suite_file_is_refused_naming_the_file_and_key(cli, tmp_path, content, fragment):
    path = suite(tmp_path, "suite.toml", content)
    code, err = cli("--preset", "smoke", "--domains", "quadratic", "--no-outputs", "--suite", path)
    assert_refused(code, err, cli.out, path, fragment)


@pytest.mark.parametrize("content, fragment", [
    (ALIAS_BOMB, "key 'preset' holds more than 100000 values (YAML aliases expanded)"),
    ("domains: &a [quadratic, *a]\n", "key 'domains'"),  # a recursive alias: refused, not walked forever
    ("preset: " + "[" * 100_000 + "]" * 100_000 + "\n", "values nested too deeply"),
    ("set: {quadratic: {dim: " + "[" * 20 + "1" + "]" * 20 + "}}\n", "key 'set' nests more than 16 levels deep"),
    ("preset: [smoke, [a, b, c, d, e, f, g, h]]\n", "key 'preset' must be a string, got ['smoke', ['a', 'b', "),
    (b"preset: sm\xffoke\n", "not UTF-8 text (byte 0xff at offset 10)"),
    ("optimizer: 5\n", "key 'optimizer' must be a list of optimizer names or tables"),
    ("preset: [unclosed\n", "malformed YAML"),
])
def test_a_hostile_or_malformed_yaml_suite_file_is_refused_with_a_short_line(cli, tmp_path, content, fragment):
    path = suite(tmp_path, "suite.yaml", content)
    code, err = cli("--preset", "smoke", "--domains", "quadratic", "--no-outputs", "--suite", path)
    assert_refused(code, err, cli.out, path, fragment)


def test_a_suite_too_large_to_expand_is_refused_before_it_is_built(cli):
    code, err = cli(*QUADRATIC, "--seeds", "100000000")
    assert_refused(code, err, cli.out, "--seeds: 100000000 seeds make more runs than a suite may hold (10000)")
    grid = ",".join(str(v) for v in range(1, 2001))  # 2000 grid points x 6 seeds = 12000 runs
    code, err = cli(*QUADRATIC, "--seeds", "6", "--set", f"quadratic.dim={grid}")
    assert_refused(code, err, cli.out, "the suite expands to up to 12000 runs", "more than a suite may hold (10000)")
