"""The calibration probes behind the cpu presets, and the regime table of a store."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import calibration
from benchmarks.calibration import PROBES, PROBES_JSON, as_quoted, quoted_figures, regime_table, study_costs
from benchmarks.store import Store
from tests.benchmarks.support import make_record, make_spec


def test_every_quoted_preset_figure_is_written_in_its_source_and_measured_by_a_probe():
    """Each figure a preset's comment quotes is in that file and equals the probe's measured value at the
    precision written (results/calibration/probes.json, from `python -m benchmarks.calibration probes`)."""
    assert PROBES_JSON.exists(), "run `python -m benchmarks.calibration probes` to measure the quoted figures"
    figures = quoted_figures()
    assert len(figures) == sum(len(p.quotes) for p in PROBES) > 15
    for probe, quote, value in figures:
        source = (calibration.ROOT / probe.source).read_text()
        assert quote.text in source, f"{probe.name}: {quote.text} is not written in {probe.source}"
        assert value is not None, f"{probe.name}: no probe run measured {quote.series} at {quote.where}"
        assert as_quoted(value, quote.text) == quote.text, f"{probe.name} {quote.series} {quote.where}: {value}"


def test_probes_are_one_recipe_at_their_seeds_with_only_the_probed_fields_set():
    for probe in PROBES:
        request = probe.request()
        assert [item.name for item in request.optimizers] == [probe.optimizer] and request.seeds == probe.seeds
        assert request.sets == {probe.domain: {k: tuple(v) for k, v in probe.sets.items()}}
        assert request.lrs == probe.lrs
    assert {probe.optimizer for probe in PROBES} == {"adam", "lion", "stable_spam"}
    assert {probe.seeds for probe in PROBES} == {1, 4, 10}


def test_a_quote_of_a_probe_of_several_seeds_is_their_mean_and_needs_every_seed(tmp_path, monkeypatch):
    probe = calibration.Probe("p", "weather", "cpu", "severity", {"steps": (10,)}, seeds=2,
                              quotes=(calibration.Quote("0.5", "test_mse"),))
    monkeypatch.setattr(calibration, "PROBES", (probe,))
    path = tmp_path / "probes.json"
    entry = {"probe": "p", "config": {"steps": 10}}
    path.write_text(json.dumps([{**entry, "seed": 0, "values": {"test_mse": 0.4}},
                                {**entry, "seed": 1, "values": {"test_mse": 0.7}}]))
    assert quoted_figures(path) == [(probe, probe.quotes[0], pytest.approx(0.55))]
    path.write_text(json.dumps([{**entry, "seed": 0, "values": {"test_mse": 0.4}}]))
    assert quoted_figures(path) == [(probe, probe.quotes[0], None)]


def test_a_probe_with_its_own_lrs_plans_one_run_per_lr():
    from benchmarks.planning.expansion import plan_suite

    lion = next(probe for probe in PROBES if probe.name == "llama-lion-lr")
    specs = plan_suite(lion.request()).specs
    assert sorted(spec.lr for spec in specs) == [1e-4, 2e-4, 1e-3, 2e-3]
    assert {spec.recipe for spec in specs} == {"lion"} and {spec.config["quant"] for spec in specs} == {"int4"}


def test_probes_select_by_name_and_reject_unknown_names():
    assert [probe.name for probe in calibration.select_probes(["weather-lr"])] == ["weather-lr"]
    assert len(calibration.select_probes(None)) == len(PROBES)
    with pytest.raises(ValueError, match="unknown probe 'nope'"):
        calibration.select_probes(["nope"])


def test_an_unknown_probe_on_the_command_line_is_one_line_and_exit_2(capsys):
    assert calibration.main(["probes", "--probe", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown probe 'nope'") and err.count("\n") == 1


def test_as_quoted_keeps_the_written_precision():
    assert as_quoted(0.78604, "0.786") == "0.786" and as_quoted(146.51288, "146.5") == "146.5"
    assert as_quoted(0.6949, "0.69") == "0.69" and as_quoted(84.54, "85") == "85"


def test_regime_table_and_costs_of_a_store(tmp_path):
    """Ratios to the strongest gate (perplexity for moe's loss), and CPU-hours summed per study."""
    with Store(tmp_path / "runs.sqlite") as store:
        for seed, value in enumerate((0.80, 0.82)):
            record = make_record(make_spec("weather", seed=seed, studies=("severity",)), value=value)
            record.final_metrics.update({"baseline/persistence": 0.9, "baseline/training_mean": 1.0})
            store.write_run(record)
        record = make_record(make_spec("moe", seed=0, studies=("moe",)), value=4.26)
        record.final_metrics.update({"baseline/bigram": 4.445, "baseline/unigram": 6.0})
        store.write_run(record)
    table = regime_table(tmp_path, preset=None).set_index("domain")
    assert table.loc["weather", "ratio"] == pytest.approx(0.81 / 0.9) and table.loc["weather", "regime"] == "in"
    assert table.loc["weather", "gate"] == "persistence" and table.loc["weather", "runs"] == 2
    assert table.loc["moe", "ratio"] == pytest.approx(math.exp(4.26 - 4.445)) and table.loc["moe", "regime"] == "in"
    costs = study_costs(tmp_path).set_index("study")
    assert costs.loc["severity", "runs"] == 2 and costs.loc["severity", "cpu_hours"] == pytest.approx(2 / 3600)


def test_costs_count_a_planned_run_stored_under_another_study_as_stored(tmp_path):
    """A study's run that another study asked for first is stored, not still to run (hparams shares main's runs)."""
    from benchmarks.planning.expansion import plan_suite
    from benchmarks.planning.request import SuiteRequest

    planned = plan_suite(SuiteRequest(preset="smoke", studies=("severity",), domains=("weather",))).specs
    with Store(tmp_path / "runs.sqlite") as store:
        shared = planned[0]
        store.write_run(make_record(shared.with_studies(("other",)), value=0.5))
    row = study_costs(tmp_path, "smoke").set_index(["domain", "study"]).loc[("weather", "severity")]
    assert row["runs"] == 0 and row["stored"] == 1 and row["planned"] == len(planned)
    assert row["to_run"] == len(planned) - 1


def test_cost_table_markdown_rows_and_totals():
    """One row per study: stored of planned, CPU-hours, minutes (the domain's mean when the study has no runs of its
    own), and what is still to run; the totals line sums the columns."""
    import pandas as pd

    costs = pd.DataFrame([
        {"domain": "llama", "study": "main", "runs": 57, "planned": 57, "stored": 57, "to_run": 0, "cpu_hours": 2.49,
         "minutes_per_run": 2.62, "cpu_hours_to_run": 0.0},
        {"domain": "llama", "study": "hparams", "runs": 0, "planned": 33, "stored": 3, "to_run": 30, "cpu_hours": 0.0,
         "minutes_per_run": 2.9, "cpu_hours_to_run": 1.44}])
    lines = calibration.cost_table_markdown(costs).splitlines()
    assert lines[2] == "| llama | `main` | 57 of 57 | 2.49 | 2.6 | — |"
    assert lines[3] == "| llama | `hparams` | 3 of 33 | 0.00 | 2.9 (domain's mean) | 30 runs, ~1.4 |"
    assert lines[-1] == ("Run so far: 57 study memberships, 2.49 CPU-hours (a run that two studies share counts in "
                         "both); still to run: 30 runs, ~1.4 CPU-hours.")
