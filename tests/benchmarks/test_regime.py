"""Regime gates: the margin rule, cells, baselines stored by the runner and computed at report time."""

import math

import pandas as pd
import pytest

import domains
from benchmarks.analysis import profile, regime
from benchmarks.analysis.frame import runs_frame
from benchmarks.running.runner import execute
from benchmarks.store import Store
from tests.benchmarks.support import make_record, make_spec


def test_margin_rule_for_lower_and_higher_is_better():
    assert regime.beats_by_margin(108.0, 120.0, False)  # 108 <= 0.9 x 120
    assert not regime.beats_by_margin(108.1, 120.0, False)
    assert regime.beats_by_margin(1094.5, 995.0, True)  # 995 + 0.1 x 995
    assert not regime.beats_by_margin(1094.4, 995.0, True)
    assert regime.beats_by_margin(-0.35, -0.40, True)  # -0.40 + 0.1 x 0.40 = -0.36
    assert not regime.beats_by_margin(-0.37, -0.40, True)
    # a loss in nats is gated on perplexity: ln 0.9 = -0.10536 nats below the bigram's 4.437
    assert regime.beats_by_margin(4.3316, 4.437, False, scale="log")
    assert not regime.beats_by_margin(4.3317, 4.437, False, scale="log")
    assert regime.required_value(4.437, False, scale="log") == 4.437 + math.log(0.9)


def cell(values, baselines, higher=False, domain="weather", status="finished"):
    return pd.DataFrame({"domain": domain, "higher_is_better": higher, "status": status,
                         "metric_value": values, "baselines": [dict(baselines)] * len(values)})


def test_a_cell_must_beat_the_strongest_gating_baseline():
    # weather gates on persistence and training_mean; linear_clean (0.5) is a reference and does not gate
    gates = {"persistence": 0.9, "training_mean": 1.0, "linear_clean": 0.5}
    state, text = regime.cell_regime(cell([0.80, 0.82], gates))  # mean 0.81 <= 0.9 x 0.9
    assert state is True and "persistence" in text
    state, text = regime.cell_regime(cell([0.85, 0.83], gates))  # 0.84 > 0.81
    assert state is False and "needs <= 0.81" in text
    assert regime.cell_regime(cell([0.5], {}))[0] is None
    assert regime.cell_regime(cell([None], gates, status="diverged"))[0] is False


def test_a_loss_in_nats_is_gated_on_perplexity():
    """moe reports val_loss: 10% below the bigram's perplexity is 0.105 nats below its loss, not 10% of it."""
    gates = {"bigram": 4.445, "unigram": 6.5}
    state, text = regime.cell_regime(cell([4.26, 4.27], gates, domain="moe"))  # exp(-0.18) = 0.835
    assert state is True and "on exp(metric)" in text
    state, text = regime.cell_regime(cell([4.35, 4.36], gates, domain="moe"))  # exp(-0.09) = 0.91
    assert state is False and "needs <= 4.34" in text
    # the same losses judged linearly would need 4.0 (0.9 x 4.445)
    assert not regime.beats_by_margin(4.26, 4.445, False)


def test_the_runner_stores_the_domains_baselines_with_the_run(tmp_path):
    quadratic = domains.get("quadratic")
    spec = make_spec("quadratic", "adam", seed=3, steps=20)
    record = execute(spec, tmp_path)
    expected = quadratic.baselines(quadratic.config("smoke", {"steps": 20}), 3)
    assert record.status == "finished"
    assert record.final_metrics["baseline/initial"] == pytest.approx(expected["initial"])
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(record)
        frame = regime.attach_baselines(runs_frame(store), compute=False)
    assert frame.iloc[0]["baselines"] == {"initial": pytest.approx(expected["initial"])}


def test_baselines_missing_from_a_stored_run_are_computed_at_report_time(tmp_path):
    quadratic = domains.get("quadratic")
    with Store(tmp_path / "runs.sqlite") as store:
        store.write_run(make_record(make_spec("quadratic", "adam", seed=1, steps=20), 0.5))
        store.write_run(make_record(make_spec("no_such_domain", "adam", seed=1), 0.5))
        frame = regime.attach_baselines(runs_frame(store))
    by_domain = dict(zip(frame["domain"], frame["baselines"]))
    initial = float(quadratic.baselines(quadratic.config("smoke", {"steps": 20}), 1)["initial"])
    assert by_domain["quadratic"] == {"initial": pytest.approx(initial)}
    assert by_domain["no_such_domain"] == {}  # regime unknown


def problem_frame():
    rows = []
    # problem 1: "a" at LR 1 has seeds 1.0 and 3.0 (mean 2.0), at LR 2 seeds 1.5, 1.5 (mean 1.5); "b" 1.8, 1.8
    for lr, values in ((1.0, (1.0, 3.0)), (2.0, (1.5, 1.5))):
        rows += [dict(recipe="a", lr=lr, seed=s, metric_value=v, k=1) for s, v in enumerate(values)]
    rows += [dict(recipe="b", lr=1.0, seed=s, metric_value=1.8, k=1) for s in range(2)]
    rows += [dict(recipe="a", lr=1.0, seed=s, metric_value=2.0, k=2) for s in range(2)]  # "b" never ran k=2
    frame = pd.DataFrame(rows)
    return frame.assign(domain="d", preset="p", variant="", status="finished", higher_is_better=False,
                        config=[{"k": k} for k in frame["k"]])


def test_profile_picks_the_lr_by_its_mean_and_counts_a_recipe_not_run_as_failure():
    ratios = profile.domain_ratios(problem_frame(), "d")
    # the per-seed oracle would give "a" 1.0 on problem 1; by means it is 1.5 vs 1.8
    assert ratios.loc['p {"k": 1}', "a"] == pytest.approx(1.0)
    assert ratios.loc['p {"k": 1}', "b"] == pytest.approx(1.8 / 1.5)
    assert ratios.loc['p {"k": 2}', "b"] == float("inf")
    table = profile.profile_table(ratios)
    assert table.loc["b", "tau=1.25"] == pytest.approx(0.5) and table.loc["a", "tau=1"] == pytest.approx(1.0)
