"""The report of a run opens with that run's summary; its claims come from the reference results when given."""

from benchmarks.outputs.report import build_outputs
from benchmarks.store import Store
from tests.benchmarks.support import make_record, make_spec


def _store(folder, values):
    folder.mkdir(parents=True, exist_ok=True)
    with Store(str(folder / "runs.sqlite")) as store:
        for recipe, by_seed in values.items():
            for seed, value in by_seed.items():
                store.write_run(make_record(make_spec(recipe=recipe, seed=seed), value=value))


def test_the_report_opens_with_the_summary_and_audits_the_reference(tmp_path):
    _store(tmp_path / "reference", {"adam": {0: 2.0, 1: 2.1, 2: 2.2}, "stable_spam": {0: 1.0, 1: 1.1, 2: 1.3}})
    _store(tmp_path / "latest", {"adam": {0: 5.0, 1: 5.5, 2: 6.0}, "spam": {0: 4.0, 1: 4.2, 2: 4.1}})
    build_outputs(tmp_path / "latest", reference=tmp_path / "reference")
    report = (tmp_path / "latest" / "report.md").read_text()
    summary, rest = report.split("## Overview")
    assert "## Summary of these runs" in summary
    # the summary speaks of this store only: spam beats adam by 1.4 on average (5.5 - 4.1 per seed: 1.0, 1.3, 1.9)
    assert "**spam**" in summary and "+1.4" in summary and "stable_spam" not in summary
    assert "## Claims about the paper" in rest
    # the reference ran (quadratic, smoke), so this store's runs of it join: its adam runs have the reference's run
    # ids (same spec), only its 3 spam runs are new: 6 + 3 = 9
    assert "reference results" in rest and "(9 runs in all)" in rest


def test_without_a_reference_the_audit_reads_this_store(tmp_path):
    _store(tmp_path / "latest", {"adam": {0: 5.0, 1: 5.5, 2: 6.0}})
    build_outputs(tmp_path / "latest", reference=None)
    report = (tmp_path / "latest" / "report.md").read_text()
    assert "## Claims audit" in report and "against the runs in this store" in report
