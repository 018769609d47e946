"""Degradation views and the run summary, on a store filled with numbers whose answers are computed here."""

import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.analysis.frame import runs_frame, study_groups
from benchmarks.outputs import degradation, tables
from benchmarks.outputs.figures import RECIPE_COLORS, colors_for
from benchmarks.outputs.numbers import plain
from benchmarks.outputs.summary import cells, run_summary
from benchmarks.store import Store
from tests.benchmarks.support import make_record, make_spec

# weather test MSE per (severity, recipe), seeds 0..2
MSE = {
    (0.0, "adam"): [0.50, 0.52, 0.51], (0.0, "stable_spam"): [0.49, 0.50, 0.52],
    (2.0, "adam"): [0.80, 0.85, 0.83], (2.0, "stable_spam"): [0.60, 0.66, 0.61],
}


def paired(a, b):
    """Mean of a - b and its 95% t interval, computed independently of benchmarks.analysis.inference."""
    d = np.subtract(a, b)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    path = tmp_path_factory.mktemp("degradation") / "runs.sqlite"
    with Store(path) as store:
        for (severity, recipe), values in MSE.items():
            for seed, value in enumerate(values):
                spec = make_spec("weather", recipe, seed, studies=("severity",), severity=severity)
                store.write_run(make_record(spec, value, metric="test_mse"))
    with Store.open_existing(path) as store:
        return runs_frame(store)


def test_severity_is_a_stress_axis_with_zero_as_the_unstressed_level(frame):
    (group,) = study_groups(frame)
    (axis,) = degradation.stress_axes(group)
    assert (axis.field, axis.reference, axis.levels) == ("severity", 0.0, (2.0,))


def test_degradation_and_its_difference_to_adams_are_paired_by_seed(frame):
    (group,) = study_groups(frame)
    (axis,) = degradation.stress_axes(group)
    found = {c.label: c for c in degradation.degradation_cells(group, axis, group.runs)}
    for recipe in ("adam", "stable_spam"):
        mean, low, high = paired(MSE[(2.0, recipe)], MSE[(0.0, recipe)])
        result = found[recipe].degradation
        assert (result.estimate, result.low, result.high) == pytest.approx((mean, low, high))
    ours = np.subtract(MSE[(2.0, "stable_spam")], MSE[(0.0, "stable_spam")])
    adams = np.subtract(MSE[(2.0, "adam")], MSE[(0.0, "adam")])
    mean, low, high = paired(ours, adams)
    versus = found["stable_spam"].vs_adam
    assert (versus.estimate, versus.low, versus.high) == pytest.approx((mean, low, high))
    assert found["adam"].vs_adam is None
    assert degradation.least_degrading(list(found.values())) == {2.0: "stable_spam"}


def test_the_degradation_table_bolds_the_least_degrading_recipe_and_is_written(frame, tmp_path):
    (group,) = study_groups(frame)
    (axis,) = degradation.stress_axes(group)
    table = degradation.degradation_table(group, axis)
    cell = table.cells[("stable_spam", "severity=2: degradation")]
    mean = np.mean(np.subtract(MSE[(2.0, "stable_spam")], MSE[(0.0, "stable_spam")]))
    assert cell.startswith(f"**+{plain(mean, 3)} [") and cell.endswith("(n=3)**")
    assert not table.cells[("adam", "severity=2: degradation")].startswith("**")
    assert table.cells[("adam", "severity=2: − adam's")] == "0 (reference)"
    written = degradation.write_degradation_tables(frame, tmp_path, tables.hparams_note)
    written += degradation.write_degradation_plots(frame, tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["severity_weather_degradation_severity.md", "severity_weather_degradation_severity.tex",
                     "severity_weather_smoke_degradation_severity.png"]
    assert r"\textbf{" in (tmp_path / "tables" / "severity_weather_degradation_severity.tex").read_text()


def test_captions_name_the_hyper_parameters_that_differ_between_recipes(frame):
    runs = frame.assign(hparams=[{"lr": 1e-3, **({"gamma1": 0.7, "total_T": 100} if r == "stable_spam" else {})}
                                 for r in frame["recipe"]])
    assert tables.differing_hparams(runs) == {"adam": {}, "stable_spam": {"gamma1": "0.7", "total_T": "100"}}
    (group,) = study_groups(runs)
    assert tables.hparams_note(group) == ("Hyper-parameters that differ between recipes: "
                                          "stable_spam: gamma1=0.7, total_T=100.")
    assert "gamma1=0.7" in tables.pivot(group).caption


def test_the_summary_names_the_best_recipe_and_its_paired_margin(frame):
    found = {c.condition: c for c in cells(frame)}
    assert set(found) == {"severity=0.0", "severity=2.0"}
    stressed = found["severity=2.0"]
    assert [name for name, *_ in stressed.ranking] == ["stable_spam", "adam"]
    mean, low, high = paired(MSE[(2.0, "adam")], MSE[(2.0, "stable_spam")])  # lower is better: runner-up − best
    assert (stressed.margin.estimate, stressed.margin.low, stressed.margin.high) == pytest.approx((mean, low, high))
    assert stressed.trust == "n=3 · underpowered"
    assert "not separated" in found["severity=0.0"].trust
    text = run_summary(frame, regime=lambda runs: f"gate saw {len(runs)} runs")
    assert "| weather (smoke) | severity=2.0 | **stable_spam** |" in text and "gate saw 6 runs" in text


def test_a_recipe_keeps_its_colour_whatever_else_is_plotted():
    alone = colors_for(["adam", "stable_spam"])
    crowd = colors_for(["adam", "spam", "lion", "stable_spam", "stable_spam [gamma1=0.5]", "mine"])
    assert alone["adam"] == crowd["adam"] and alone["stable_spam"] == crowd["stable_spam"]
    assert len(set(crowd.values())) == len(crowd)
    assert colors_for(["mine"])["mine"] == crowd["mine"]
    assert "adam" in RECIPE_COLORS


@pytest.mark.parametrize("value, text", [(156.04, "156"), (0.68351, "0.6835"), (145.2, "145.2"), (0.0038, "0.0038"),
                                         (12345.6, "12346"), (float("nan"), "—"), (-127.7, "-127.7"), (2.0, "2")])
def test_numbers_are_plain(value, text):
    assert plain(value) == text
