"""Suites: grid expansion, run ids, overrides, suite files and bad input (one line, exit 2, nothing written)."""

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import cli
from benchmarks.errors import BadInput
from benchmarks.planning import SuiteRequest, expand
from benchmarks.planning.recipe_check import validate_recipes
from benchmarks.planning.request import expand_hparam_grid, parse_optimizers, parse_sets
from benchmarks.planning.suite_file import load_suite_file
from domains.base import Domain, RunProfile, StudySpec
from tests.support.registry import registered

REPO = Path(__file__).resolve().parents[2]


def plan(**fields):
    return expand(SuiteRequest(preset="smoke", domains=("quadratic",), **fields)).specs


def test_grid_expansion_counts():
    assert len(plan()) == 4  # main: 4 recipes x 1 seed (smoke)
    assert len(plan(seeds=3)) == 12
    assert len(plan(seeds=2, sets=parse_sets(["quadratic.spike_prob=0,0.05", "quadratic.dim=16,32,64"]))) == 48
    sweep = plan(studies=("lr_sweep",))
    assert len(sweep) == 2 * 8 and len({s.lr for s in sweep}) == 8
    assert {s.lr for s in plan(studies=("lr_sweep",), lrs=(1e-3, 1e-2))} == {1e-3, 1e-2}
    items = parse_optimizers("adam,stable_spam:lr=0.5")
    specs = plan(studies=("lr_sweep",), optimizers=items, lrs=(1e-3, 1e-2))
    assert sorted((s.recipe, s.lr) for s in specs) == [("adam", 1e-3), ("adam", 1e-2), ("stable_spam", 0.5)]


def test_set_values_are_typed_and_reach_the_config():
    specs = plan(sets=parse_sets(["quadratic.dim=16,64"]))
    assert sorted({s.config["dim"] for s in specs}) == [16, 64]
    assert all(isinstance(s.overrides["dim"], int) for s in specs)


def test_a_run_shared_by_two_studies_is_planned_once():
    specs = plan(studies=("main", "ablation"))
    assert len(specs) == 4 + 7 - 1  # adam at its default LR is in both
    (adam,) = [s for s in specs if s.recipe == "adam"]
    assert adam.studies == ("ablation", "main")


def test_run_ids_are_stable_and_ignore_the_study_label():
    first, second = plan(), plan()
    assert [s.run_id for s in first] == [s.run_id for s in second]
    assert len({s.run_id for s in first}) == 4
    main_adam = next(s for s in first if s.recipe == "adam")
    ablation_adam = next(s for s in plan(studies=("ablation",)) if s.recipe == "adam")
    assert main_adam.run_id == ablation_adam.run_id
    default_lr = main_adam.hparams["lr"]
    explicit = plan(optimizers=parse_optimizers(f"adam:lr={default_lr}"))[0]  # the default LR, spelled out
    assert explicit.run_id == main_adam.run_id
    assert plan(seeds=2)[1].run_id != main_adam.run_id
    # the same id in a fresh interpreter (no dependence on hash randomisation)
    code = ("import json,sys; from benchmarks.planning import RunSpec; d=json.loads(sys.argv[1]); "
            "print(RunSpec(**{**d, 'studies': tuple(d['studies'])}).run_id)")
    fields = {k: getattr(main_adam, k) for k in ("domain", "preset", "config", "overrides", "recipe", "hparams",
                                                  "seed", "budget", "variant", "studies")}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(fields)], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, check=True)
    assert out.stdout.strip() == main_adam.run_id


def test_a_field_at_its_identity_omitted_value_keeps_the_run_id_it_had_before_the_field_existed():
    """weather's ``anomaly_noise`` was added after runs were stored: at "std" (what those runs did) the run id is
    the hash of the config without the field; at the new default "variance" it is a new run."""
    request = dict(preset="smoke", domains=("weather",), studies=("severity",), optimizers=parse_optimizers("adam"))
    (std,) = [s for s in expand(SuiteRequest(**request, sets=parse_sets(["weather.anomaly_noise=std"]))).specs
              if s.config["severity"] == 2.0]
    (variance,) = [s for s in expand(SuiteRequest(**request)).specs if s.config["severity"] == 2.0]
    assert std.config["anomaly_noise"] == "std" and variance.config["anomaly_noise"] == "variance"
    before = dataclasses.replace(std, config={k: v for k, v in std.config.items() if k != "anomaly_noise"},
                                 identity_omits={})
    assert std.run_id == before.run_id != variance.run_id


def test_variant_labels_name_non_default_hyper_parameters():
    specs = plan(optimizers=parse_optimizers("stable_spam:gamma1=0.7:lr=0.1,adam"))
    assert {s.recipe: s.variant for s in specs} == {"stable_spam": "gamma1=0.7", "adam": ""}


@pytest.mark.parametrize("sets, message", [
    (["weather.severity=2"], "not selected"),
    (["quadratic.nope=1"], "unknown config field 'nope'"),
    (["quadratic.dim=abc"], "field 'dim' cannot take 'abc'"),
    (["quadratic.spike_prob=2"], "spike_prob"),
])
def test_bad_set_values_are_bad_input(sets, message):
    with pytest.raises(BadInput, match=message):
        plan(sets=parse_sets(sets))


def test_bad_requests_are_bad_input():
    with pytest.raises(BadInput, match="unknown domain 'nope'"):
        expand(SuiteRequest(preset="smoke", domains=("nope",)))
    with pytest.raises(BadInput, match="unknown study 'no_such_study'"):
        plan(studies=("no_such_study",))
    with pytest.raises(BadInput, match="expected key=value"):
        parse_optimizers("adam:lr")


def test_recipes_are_validated_by_building_them():
    with pytest.raises(BadInput, match="adamx"):
        validate_recipes(plan(optimizers=parse_optimizers("adamx")), {"adamx": "--optimizers adamx"})
    with pytest.raises(BadInput, match="gamma1"):
        validate_recipes(plan(optimizers=parse_optimizers("stable_spam:gamma1=2")))
    validate_recipes(plan())  # the study's own recipes are fine


SUITE = """
preset = "smoke"
domains = ["quadratic"]
study = "main"
seeds = 2
lrs = [0.01, 0.03]

[[optimizer]]
name = "stable_spam"
gamma1 = [0.5, 0.7]

[set.quadratic]
spike_prob = [0.0, 0.05]

[budget]
quadratic = 50
"""


def test_a_suite_file_declares_the_same_things(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    request, given = load_suite_file(path)
    specs = expand(request).specs
    assert len(specs) == 2 * 2 * 2 * 2  # gamma1 x lrs x spike_prob x seeds
    assert {s.variant for s in specs} == {"gamma1=0.5", "gamma1=0.7"} and {s.budget for s in specs} == {50}
    # a flag given on the command line wins over the file
    args = cli.build_parser().parse_args(["--suite", str(path), "--seeds", "1", "--optimizers", "adam"])
    specs = expand(cli.request_from_args(args)).specs
    assert len(specs) == 2 * 2 and {s.recipe for s in specs} == {"adam"}


@pytest.mark.parametrize("text, message", [
    ('preset = "smoke"\nsedes = 2\n', "unknown key 'sedes'"),
    ('seeds = "two"\n', "key 'seeds' must be an integer"),
    ('domains = ["quadratic", "nope"]\n', "unknown domain 'nope'"),
    ('preset = "smoke"\ndomains = ["quadratic"]\noptimizers = ["adamx"]\n', "optimizer 1 adamx"),
    ('preset = "smoke"\ndomains = ["quadratic"]\n[set.quadratic]\ndimm = 3\n', "unknown config field 'dimm'"),
    ('preset = "smoke\n', "malformed TOML"),
    ('preset = "smoke"\ndomains = ["quadratic"]\n[budget]\nquadratic = 0\n', "'budget.quadratic' must be at least 1"),
])
def test_suite_file_errors_are_one_line_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["--suite", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err
    assert not out.exists()


def test_unknown_optimizer_or_bad_hparam_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    out = tmp_path / "out"
    for items, named in (("adam,adamx", "adamx"), ("stable_spam:gamma1=2", "gamma1")):
        assert cli.main(["--preset", "smoke", "--domains", "quadratic", "--optimizers", items, "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and named in captured.err and captured.out == ""
    assert not out.exists()


def test_out_may_be_any_writable_folder_but_a_suite_files_out_stays_in_the_results_root(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path / "results"))
    elsewhere = tmp_path / "elsewhere" / "deep"
    assert cli.main(["--preset", "smoke", "--domains", "quadratic", "--out", str(elsewhere), "--dry-run"]) == 0
    assert cli.main(["--preset", "smoke", "--domains", "quadratic", "--dry-run"]) == 0  # default: results/latest
    assert "results in " + str(tmp_path / "results" / "latest") in capsys.readouterr().out
    (tmp_path / "a_file").write_text("")
    assert cli.main(["--preset", "smoke", "--domains", "quadratic", "--out", str(tmp_path / "a_file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    suite = tmp_path / "s.toml"
    suite.write_text('preset = "smoke"\ndomains = ["quadratic"]\nout = "../escaped"\n')
    assert cli.main(["--suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the results root" in err and str(suite) in err
    assert not (tmp_path / "escaped").exists()
    suite.write_text('preset = "smoke"\ndomains = ["quadratic"]\nout = "mine"\n')
    assert cli.main(["--suite", str(suite), "--dry-run"]) == 0
    assert "results in " + str(tmp_path / "results" / "mine") in capsys.readouterr().out
    assert cli.main(["--suite", str(suite), "--dry-run", "--out", str(elsewhere)]) == 0  # the flag wins
    assert "results in " + str(elsewhere) in capsys.readouterr().out
    assert cli.main(["--preset", "nope"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: run_all.py: argument --preset")


@pytest.mark.parametrize("argv, message", [
    (["--domains", "quadratik"], "unknown domain 'quadratik' (did you mean 'quadratic'?)"),
    (["--domains", "quadratic", "--optimizers", "stabel_spam"],
     "unknown optimizer recipe 'stabel_spam' (did you mean 'stable_spam'"),
    (["--domains", "quadratic", "--study", "lr_swep"], "unknown study 'lr_swep' (did you mean 'lr_sweep'?)"),
])
def test_misspelled_names_get_a_suggestion_on_one_line(tmp_path, capsys, argv, message):
    assert cli.main(["--preset", "smoke", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_a_study_recipe_item_carries_its_own_hyper_parameters():
    items = expand_hparam_grid("stable_spam:gamma1=0.5", {"gamma2": [0.8, 0.9], "gamma3": 0.99}, "study hparams")
    assert [item.name for item in items] == ["stable_spam", "stable_spam"]
    assert [item.hparams for item in items] == [
        {"gamma3": 0.99, "gamma2": 0.8, "gamma1": 0.5},
        {"gamma3": 0.99, "gamma2": 0.9, "gamma1": 0.5},
    ]


def test_a_study_can_run_a_recipe_at_some_grid_points_only():
    """llama `main`: Adam-mini appears in the paper's 16-bit table only, so it runs without quantization only;
    asked for by name with --optimizers, it runs at every quant format of the grid."""
    specs = expand(SuiteRequest(preset="cpu", domains=("llama",), studies=("main",), seeds=1)).specs
    formats = {}
    for spec in specs:
        formats.setdefault(spec.recipe, set()).add((spec.config["compute"], spec.config["quant"]))
    assert formats.pop("adam_mini") == {("fp32", "none")}
    assert set(formats) == {"adam", "adam_clip", "adafactor", "spam", "stable_spam", "stable_spam_ref"}
    assert all(p == {("fp32", "int4"), ("fp32", "fp4_e1m2"), ("fp32", "none")} for p in formats.values())
    asked = expand(SuiteRequest(preset="cpu", domains=("llama",), studies=("main",), seeds=1,
                                optimizers=parse_optimizers("adam_mini"))).specs
    assert sorted(s.config["quant"] for s in asked) == ["fp4_e1m2", "int4", "none"]


def test_the_paper_grid_computes_in_bf16_for_the_16_bit_and_the_4_bit_cells():
    specs = expand(SuiteRequest(preset="paper", domains=("llama",), studies=("main",), seeds=1)).specs
    assert {(s.config["compute"], s.config["quant"]) for s in specs} == {("bf16", "int4"), ("bf16", "fp4_e1m2"),
                                                                         ("bf16", "none")}
    assert "precision" not in specs[0].config  # stored as the two settings


def test_an_old_precision_set_replaces_the_grid_axis_and_keeps_its_meaning():
    """``--set llama.precision=int4,fp4_e1m2`` (the CLI's example) replaced the grid's precision axis: it now
    replaces the quant axis, and on the bf16 paper preset a bare format still means fp32 + that format."""
    for preset, compute in (("cpu", "fp32"), ("paper", "fp32")):
        request = SuiteRequest(preset=preset, domains=("llama",), studies=("lr_sweep",), seeds=1,
                               sets={"llama": {"precision": ("int4", "fp4_e1m2")}})
        specs = expand(request).specs
        assert {(s.config["compute"], s.config["quant"]) for s in specs} == {(compute, "int4"), (compute, "fp4_e1m2")}
        for spec in specs:  # a worker rebuilds the same config from the stored overrides
            rebuilt = __import__("domains").get("llama").config(preset, spec.overrides)
            assert (rebuilt.compute, rebuilt.quant) == (spec.config["compute"], spec.config["quant"])
    request = SuiteRequest(preset="cpu", domains=("llama",), studies=("lr_sweep",), seeds=1,
                           sets={"llama": {"precision": ("int4",), "compute": ("bf16",)}})
    assert {(s.config["compute"], s.config["quant"]) for s in expand(request).specs} == {("bf16", "int4")}


def test_a_budget_reaches_the_hyper_parameters_derived_from_the_step_count():
    """Stable-SPAM's total_T and reset interval follow a suite's budget, not the preset's steps."""
    llama = __import__("domains").get("llama")
    preset_steps = llama.config("cpu").steps
    request = SuiteRequest(preset="cpu", domains=("llama",), studies=("main",), seeds=1,
                           optimizers=parse_optimizers("stable_spam"), budgets={"llama": 4000})
    specs = expand(request).specs
    assert {s.budget for s in specs} == {4000} and {s.config["steps"] for s in specs} == {preset_steps}
    assert {s.hparams["total_T"] for s in specs} == {4000}
    assert {s.hparams["reset_interval"] for s in specs} == {200}  # the paper's 1000 of 20k steps, scaled to 4000
    assert {s.variant for s in specs} == {""}


@dataclass
class RoundsConfig:
    rounds: int = 10
    width: int = 4


class RoundsDomain(Domain):
    """A domain whose run length is ``rounds`` (never run)."""

    name = "rounds_test_domain"
    metric = "score"
    Config = RoundsConfig
    presets = {"smoke": {}}
    budget_field = "rounds"

    def studies(self):
        return {"main": {"smoke": StudySpec(recipes=("adam",))}}

    def run_profile(self, config):
        return RunProfile(optimizer_steps=config.rounds, base_lr=1.0 / config.rounds)  # follows the run length

    def run(self, config, ctx):
        raise NotImplementedError


def test_a_budget_goes_into_the_field_the_domain_names():
    with registered(RoundsDomain):
        request = SuiteRequest(preset="smoke", domains=("rounds_test_domain",), budgets={"rounds_test_domain": 40})
        (spec,) = expand(request).specs
        assert spec.overrides == {"rounds": 40} and spec.config["rounds"] == 10 and spec.budget == 40
        assert spec.hparams == {"lr": 1.0 / 40}
        RoundsDomain.budget_field = "episodes"
        try:
            with pytest.raises(BadInput, match="unknown config field 'episodes'"):
                expand(request)
        finally:
            RoundsDomain.budget_field = "rounds"
