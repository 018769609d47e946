"""Tables, plots, report and claims audit built from a store filled with known numbers."""

import dataclasses
import statistics

import numpy as np
import pandas as pd
import pytest

from benchmarks import audit as claims
from benchmarks import cli
from benchmarks.analysis.frame import runs_frame
from benchmarks.outputs import share_matrices, tables
from benchmarks.outputs.report import build_outputs
from benchmarks.protocol.claims import CLAIMS
from benchmarks.store import Curve, Store
from domains.base import Domain
from tests.benchmarks.support import make_record, make_spec
from tests.support.registry import registered

# weather test MSE per (severity, recipe): three seeds each, chosen so Stable-SPAM's edge grows with severity
WEATHER = {
    (0, "adam"): [0.150, 0.151, 0.153], (0, "stable_spam"): [0.149, 0.150, 0.151], (0, "spam"): [0.156, 0.157, 0.158],
    (2, "adam"): [0.200, 0.202, 0.203], (2, "stable_spam"): [0.185, 0.186, 0.188], (2, "spam"): [0.193, 0.195, 0.196],
}


BASELINES = {"weather": {"persistence": 0.9, "training_mean": 1.0}, "llama": {"bigram": 120.0, "unigram": 500.0},
             "moe": {"bigram": 4.8, "unigram": 6.3}, "quadratic": {"initial": 10.0}}


def with_baselines(record):
    """The record with its domain's baselines stored as the runner stores them (numbers above)."""
    record.final_metrics.update({f"baseline/{k}": v for k, v in BASELINES[record.spec.domain].items()})
    return record


def fill(store: Store) -> None:
    for (severity, recipe), values in WEATHER.items():
        for seed, value in enumerate(values):
            spec = make_spec("weather", recipe, seed, severity=severity)
            store.write_run(with_baselines(make_record(spec, value, metric="test_mse")))
    store.write_run(make_record(make_spec("weather", "adam", 3, severity=2), status="diverged", metric="test_mse"))
    # an LR sweep on the quadratic, with a divergence at the large LR and one gradient-norm spike per run
    spiky = 1.0 + 0.01 * np.random.default_rng(0).standard_normal(300)
    spiky[150] = 50.0
    for lr, status in ((1e-3, "finished"), (1e-2, "finished"), (1.0, "diverged")):
        for seed in range(2):
            spec = make_spec("quadratic", "adam", seed, lr=lr, studies=("lr_sweep",))
            store.write_run(with_baselines(make_record(spec, 1.0 + seed + lr, status=status, steps=300,
                                                       grad_norms=spiky)))
    # llama int4: Adam clearly better (-> C10 not reproduced); moe: overlapping (-> C11 inconclusive)
    for seed, (adam, stable) in enumerate([(20.0, 30.0), (20.5, 30.8), (21.0, 31.1)]):
        for recipe, value in (("adam", adam), ("stable_spam", stable)):
            store.write_run(with_baselines(make_record(make_spec("llama", recipe, seed, precision="int4"), value,
                                                       metric="val_ppl")))
    for seed, (adam, stable) in enumerate([(4.0, 4.1), (4.2, 4.0), (4.1, 4.2)]):
        for recipe, value in (("adam", adam), ("stable_spam", stable)):
            store.write_run(with_baselines(make_record(make_spec("moe", recipe, seed), value, metric="val_loss")))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store written directly (no domain code runs), then every output rebuilt from it."""
    out = tmp_path_factory.mktemp("root") / "results"
    with Store(out / "runs.sqlite") as store:
        fill(store)
    build_outputs(out)
    written = [p for p in out.rglob("*") if p.is_file()]
    return out, written


def test_the_report_command_rebuilds_from_a_store_and_refuses_a_folder_without_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSB_RESULTS_ROOT", str(tmp_path))
    with Store(tmp_path / "runs.sqlite") as store:
        fill(store)
    assert cli.main(["report", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").is_file() and "rebuilt" in capsys.readouterr().out
    assert cli.main(["report", "--out", str(tmp_path / "empty")]) == 2
    assert "no results store" in capsys.readouterr().err


def expected_cell(values, extra=""):
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g} (n={len(values)}{extra})"


def test_pivot_tables_hold_mean_std_n_and_divergences(built):
    out, _ = built
    markdown = (out / "tables" / "main_weather.md").read_text()
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| recipe")}
    assert "| recipe | severity=0 | severity=2 |" in markdown
    assert lines["adam"] == [expected_cell(WEATHER[(0, "adam")]), expected_cell(WEATHER[(2, "adam")], ", 1 div")]
    assert lines["stable_spam"] == [expected_cell(WEATHER[(0, "stable_spam")]), expected_cell(WEATHER[(2, "stable_spam")])]
    assert "preset smoke" in markdown and "budget 100" in markdown and "test_mse (lower is better)" in markdown
    latex = (out / "tables" / "main_weather.tex").read_text()
    assert r"\begin{tabular}{lcc}" in latex and r"$\pm$" in latex and r"stable\_spam" in latex
    sweep = (out / "tables" / "lr_sweep_quadratic.md").read_text()
    assert "| adam lr=0.001 |" in sweep and "| adam lr=1 | — (2 div) † |" in sweep


def test_runs_csv_is_one_row_per_run_with_flat_config(built):
    out, _ = built
    table = pd.read_csv(out / "runs.csv")
    assert len(table) == 6 * 3 + 1 + 6 + 6 + 6
    weather = table[(table["domain"] == "weather") & (table["status"] == "finished")]
    means = weather.groupby(["config.severity", "recipe"])["metric_value"].mean()
    assert means[(2, "spam")] == pytest.approx(statistics.mean(WEATHER[(2, "spam")]))
    assert set(pd.read_parquet(out / "runs.parquet")["run_id"]) == set(table["run_id"])


def test_plots_are_written_as_png(built):
    out, written = built
    names = {p.name for p in written if p.suffix == ".png"}
    assert {"main_weather_smoke_loss.png", "main_weather_smoke_grad_norm.png", "main_weather_smoke_vs_severity.png",
            "lr_sweep_quadratic_smoke_lr.png", "performance_profile.png"} <= names
    for name in names:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_claims_audit_verdicts_follow_the_data(built):
    out, _ = built
    with Store(out / "runs.sqlite") as store:
        results = {r.id: r for r in claims.audit(runs_frame(store), store, CLAIMS)}
    # three seeds per arm: at best underpowered; Adam clearly better at INT4 (20 vs 30): contradicted in regime
    assert results["C13"].verdict == claims.UNDERPOWERED
    assert len(results["C13"].checks) == 3  # beats SPAM at 2 severities + growth
    assert results["C10"].verdict == claims.NOT_REPRODUCED
    assert results["C11"].verdict == claims.UNDERPOWERED
    assert results["C12"].verdict == claims.NOT_RUN and results["C1"].verdict == claims.NOT_RUN
    assert "n=3" in results["C10"].checks[0].numbers and results["C10"].checks[0].result.method == "paired t"
    report = (out / "report.md").read_text()
    assert "| **C13**" in report and "**underpowered**" in report and "**not run**" in report
    assert "Source: Fig. 9 (arXiv version)." in report and "Source: Table 4.2 (thesis version)." in report
    assert "plots/main_weather_smoke_vs_severity.png" in report and "## Diverged runs" in report
    assert "raw /" in report and "Holm" in report and "mean ± sample std (n)" in report
    assert str(out) not in report and "Trivial baselines" in report and "persistence* 0.9" in report


def test_a_cell_out_of_regime_is_marked_in_the_table(built):
    out, _ = built
    markdown = (out / "tables" / "main_weather.md").read_text()
    # weather cells (0.15-0.20) beat persistence 0.9 by far: no mark; the legend is in the caption
    assert "†" not in markdown.split("| recipe |")[1] and "† out of regime" in markdown
    # quadratic: 1.0 + seed + lr against an initial loss of 10 is in regime; the all-diverged LR is not
    sweep = (out / "tables" / "lr_sweep_quadratic.md").read_text()
    assert "| adam lr=0.001 | 1.501 ± 0.71 (n=2) |" in sweep and "| adam lr=1 | — (2 div) † |" in sweep


def test_spike_counts_reach_the_frame(built):
    out, _ = built
    with Store(out / "runs.sqlite") as store:
        frame = runs_frame(store)
    sweep = frame[frame["domain"] == "quadratic"]
    assert set(sweep["grad_norm_spikes"]) == {1.0}


def test_every_llama_claim_is_checked_against_synthetic_runs(tmp_path):
    """4-bit Stable-SPAM beats 4-bit Adam (which diverges at the larger LR) but not 16-bit Adam; 120 is the
    bigram, so every cell (about 20-26) is in regime."""
    rng = np.random.default_rng(0)
    with Store(tmp_path / "runs.sqlite") as store:
        for precision, base in (("fp32", 20.0), ("int4", 24.0)):
            for recipe, offset in (("adam", 2.0), ("stable_spam", 0.0), ("spam", 2.0)):
                for lr in (1e-3, 3e-3):
                    for seed in range(3):
                        diverged = precision == "int4" and recipe == "adam" and lr == 3e-3
                        spec = make_spec("llama", recipe, seed, lr=lr, precision=precision)
                        store.write_run(with_baselines(make_record(
                            spec, base + offset + 0.3 * rng.random(), metric="val_ppl",
                            status="diverged" if diverged else "finished")))
        results = {r.id: r for r in claims.audit(runs_frame(store), store, CLAIMS)}
    assert results["C2"].verdict == "partially run (2 of 8)"  # adam and spam at INT4 only
    assert results["C3"].verdict == claims.NOT_REPRODUCED  # 24 > 22: worse than fp32 Adam
    assert results["C5"].verdict == "partially run (2 of 5)"
    assert results["C10"].verdict == "partially run (1 of 3)"
    assert all(r.verdict == claims.NOT_RUN for k, r in results.items() if k in ("C6", "C11", "C12", "C13", "C14"))
    assert {r.verdict.split(" (")[0] for r in results.values()} <= set(claims.VERDICTS)


class RoutedDomain(Domain):
    """A MoE-like test domain: it declares its expert loads as a share matrix (it is never run)."""

    name = "routed_test_domain"
    metric = "val_loss"
    Config = dict
    presets = {}
    share_matrices = {"expert_load": {
        "series": "expert_load/L{row}/E{column}", "title": "Expert load (fraction of top-k assignments)",
        "rows": "layer", "columns": "expert", "trend": "load_cv_mean", "trend_title": "load imbalance",
        "trend_label": "coefficient of variation of the load"}}

    def run(self, config, ctx):
        raise NotImplementedError


def moe_record(recipe: str, seed: int, val_losses: list[float], loads: np.ndarray, status: str = "finished"):
    """A MoE-like run: val_loss evaluated every 30 steps, expert loads (layers x experts) at each evaluation."""
    steps = np.arange(1, len(val_losses) + 1) * 30
    spec = make_spec(RoutedDomain.name, recipe, seed, studies=("moe",))
    record = make_record(spec, val_losses[-1], metric="val_loss",
                         status=status, steps=int(steps[-1]))
    record.curves[("eval", "val_loss")] = Curve(steps, np.asarray(val_losses, float))
    for (layer, expert), value in np.ndenumerate(loads):
        record.curves[("eval", f"expert_load/L{layer}/E{expert}")] = Curve(steps, np.full(len(steps), value))
    record.curves[("eval", "EXPERT_LOAD/L9/E9")] = Curve(steps, np.zeros(len(steps)))  # another case: not a load
    return record


def test_checkpoint_steps_are_nearest_thirds_of_the_last_evaluation():
    assert tables.checkpoint_steps([0, 8192, 16384, 24576, 32768]) == [8192, 24576, 32768]
    assert tables.checkpoint_steps(range(30, 181, 30)) == [60, 120, 180]
    assert tables.checkpoint_steps([200, 100, 100]) == [100, 200]
    assert tables.checkpoint_steps([10, 20, 30, 40], count=2) == [20, 40]


@pytest.fixture
def routed():
    with registered(RoutedDomain):
        yield


@pytest.fixture
def moe_outputs(tmp_path, routed):
    """Adam and Stable-SPAM MoE runs (2 finished seeds each, one diverged Adam seed) and their outputs."""
    balanced, skewed = np.full((2, 4), 0.25), np.array([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(moe_record("adam", 0, [6.0, 5.8, 5.6, 5.5, 5.4, 5.3], skewed))
        store.write_run(moe_record("adam", 1, [6.2, 6.0, 5.8, 5.7, 5.6, 5.5], balanced))
        store.write_run(moe_record("adam", 2, [6.1, 9.0], skewed, status="diverged"))
        store.write_run(moe_record("stable_spam", 0, [6.0, 5.7, 5.5, 5.3, 5.2, 5.1], balanced))
        store.write_run(moe_record("stable_spam", 1, [6.0, 5.9, 5.5, 5.5, 5.2, 5.3], balanced))
    build_outputs(tmp_path)
    return tmp_path


def test_checkpoint_table_gives_the_metric_at_three_evaluations(moe_outputs):
    markdown = (moe_outputs / "tables" / "moe_routed_test_domain_checkpoints.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| recipe")}
    assert "| recipe | step 60 | step 120 | step 180 |" in markdown
    assert "val_loss at evaluation steps 60, 120, 180" in markdown
    assert rows["adam"] == [expected_cell([5.8, 6.0], ", 1 div"), expected_cell([5.5, 5.7], ", 1 div"),
                            expected_cell([5.3, 5.5], ", 1 div")]
    assert rows["stable_spam"] == [expected_cell([5.7, 5.9]), expected_cell([5.3, 5.5]), expected_cell([5.1, 5.3])]
    assert r"step 60 & step 120 & step 180 \\" in (moe_outputs / "tables" / "moe_routed_test_domain_checkpoints.tex").read_text()
    assert "tables/moe_routed_test_domain_checkpoints.md" in (moe_outputs / "report.md").read_text()


def test_expert_load_is_averaged_over_finished_seeds_and_plotted(moe_outputs):
    with Store(moe_outputs / "runs.sqlite") as store:
        frame = runs_frame(store)
        adam = frame[(frame["recipe"] == "adam") & (frame["status"] == "finished")]
        (matrix,) = share_matrices.declared_share_matrices(RoutedDomain.name)
        load, step = share_matrices.final_shares(store, adam["run_id"], matrix)
        assert store.curve_names("eval", frame["run_id"], "expert_load/") == sorted(
            f"expert_load/L{layer}/E{expert}" for layer in range(2) for expert in range(4))
        assert store.curve_names("eval", frame["run_id"], "val_") == ["val_loss"]
        assert share_matrices.final_shares(store, ["no-such-run"], matrix) is None
    assert step == 180
    np.testing.assert_allclose(load, [[0.325, 0.275, 0.225, 0.175], [0.25] * 4])
    np.testing.assert_allclose(load.sum(axis=1), 1.0)
    assert (moe_outputs / "plots" / "moe_routed_test_domain_smoke_expert_load.png").read_bytes()[:4] == b"\x89PNG"


def test_no_checkpoint_table_or_expert_load_plot_without_their_curves(built):
    out, written = built
    names = {p.name for p in written}
    assert not any(name.endswith("_checkpoints.md") or name.endswith("_expert_load.png") for name in names)


def test_no_share_matrix_plot_without_a_declaration(tmp_path):
    """The same expert-load series when the run's domain declares nothing (here: is not registered): no heat map."""
    with Store(tmp_path / "runs.sqlite") as store:
        record = moe_record("adam", 0, [6.0, 5.5], np.full((2, 4), 0.25))
        store.write_run(record)
    assert not any(p.name.endswith("_expert_load.png") for p in build_outputs(tmp_path))


def test_a_run_stored_without_a_budget_reads_its_configs_steps(tmp_path):
    """Stores written before the budget column held every run's length: the frame falls back to ``steps``."""
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(make_record(make_spec(steps=40)))
        store.write_run(make_record(make_spec(seed=1, steps=40), budget=25))
        frame = runs_frame(store)
    assert sorted(frame["budget"]) == [25, 40]


def test_an_out_of_regime_cell_is_named_with_what_would_fix_it(tmp_path):
    """The report names each out-of-regime cell with its numbers and the domain's note on the scale that fixes it."""
    with Store(tmp_path / "runs.sqlite") as store:
        for seed, value in enumerate((55.0, 60.0)):
            spec = make_spec("mujoco", "adam", seed, studies=("rl",), env="Ant", algo="PPO")
            record = make_record(spec, value, metric="eval_return", higher_is_better=True)
            record.final_metrics.update({"baseline/untrained_policy": 995.5, "baseline/random_policy": -11.8})
            store.write_run(record)
    build_outputs(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "adam at all (out of regime: 57.5 vs untrained_policy 995.5 (needs >= 1095" in report
    assert "what would fix it: Ant's untrained policy stands still" in report


def test_the_llama_note_for_an_int2_cell_asks_for_a_larger_model():
    import domains

    llama = domains.get("llama")
    assert "larger model" in llama.regime_note({"quant": "int2"}) and "bigram" in llama.regime_note({"quant": "int2"})
    assert "more training tokens" in llama.regime_note({"quant": "int4"})


def test_an_out_of_regime_variant_of_an_in_regime_recipe_is_named_with_its_moved_setting(tmp_path):
    """In an ``hparams``-like study the default recipe is in regime and a variant is not: the report names the moved
    hyper-parameter as the reason, not the domain's scale note (which the default's cell disproves)."""
    with Store(tmp_path / "runs.sqlite") as store:
        for recipe, values in (("stable_spam", (70.0, 71.0)), ("stable_spam:reset_interval=13", (91.0, 92.0))):
            for seed, value in enumerate(values):
                spec = make_spec("llama", recipe.split(":")[0], seed, studies=("hparams",), quant="fp4_e1m2")
                if ":" in recipe:
                    spec = dataclasses.replace(spec, variant="reset_interval=13",
                                               hparams={**spec.hparams, "reset_interval": 13})
                record = make_record(spec, value, metric="val_ppl")
                record.final_metrics.update({"baseline/bigram": 85.2, "baseline/unigram": 400.0})
                store.write_run(record)
    build_outputs(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "stable_spam [reset_interval=13] at all (out of regime: 91.5 vs bigram 85.2" in report
    assert ("what would fix it: stable_spam's own hyper-parameters (stable_spam is in regime at the same config): the "
            "moved reset_interval=13 is what leaves this cell out") in report
    assert "more training tokens" not in report
