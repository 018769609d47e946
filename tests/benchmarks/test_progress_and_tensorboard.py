"""Per-run progress lines, the timing conditions every run stores, and live curves in TensorBoard event files."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks import SuiteRequest, run_plan
from benchmarks.planning.request import parse_optimizers
from benchmarks.running.machine_load import oversubscription_warning
from benchmarks.running.progress import RunLines, run_label
from benchmarks.store import Store
from tests.benchmarks.support import make_spec


def test_a_finished_run_is_one_line_with_its_count_label_metric_and_time():
    specs = [make_spec("llama", "adam", 0, precision="int4"), make_spec("llama", "stable_spam", 1, precision="int4")]
    lines = RunLines(specs)
    first = lines.line(specs[0].run_id, "finished", "val_ppl", 156.04, 36.2)
    assert first.startswith("[1/2] llama int4 adam seed 0: val_ppl 156, 36 s (elapsed ")
    assert "left)" in first
    second = lines.line(specs[1].run_id, "diverged", None, None, 3.0, "loss nan")
    assert second.startswith("[2/2] llama int4 stable_spam seed 1: diverged (loss nan), 3.0 s") and "left" not in second
    assert run_label(make_spec("weather", "spam", 2, severity=2.0)) == "weather severity=2 spam seed 2"


def test_oversubscription_is_named_before_runs_are_timed():
    assert oversubscription_warning(4.5, 2, 1, 1).startswith("warning: the machine is oversubscribed (load 4.5 on 2")
    assert "2 worker(s) x 2 torch thread(s) = 4 > 2 cores" in oversubscription_warning(0.1, 2, 2, 2)
    assert oversubscription_warning(0.5, 2, 1, 1) is None


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    result = run_plan(SuiteRequest(preset="smoke", domains=("quadratic",), optimizers=parse_optimizers("adam"),
                                   seeds=1), root / "out", outputs=False, tensorboard=root / "tb")
    return root, result


def test_each_runs_curves_are_streamed_to_tensorboard_events(streamed):
    root, result = streamed
    (row,) = result.rows
    (folder,) = (root / "tb" / "quadratic").iterdir()
    assert folder.name.startswith("adam_lr0.03_seed0_")
    events = EventAccumulator(str(folder))
    events.Reload()
    with Store.open_existing(root / "out" / "runs.sqlite") as store:
        loss = store.curve(row["run_id"], "train", "loss")
    logged = events.Scalars("train/loss")
    assert [e.step for e in logged] == loss.steps.tolist()  # every step, in order
    assert [e.value for e in logged] == pytest.approx(loss.values.tolist(), rel=1e-6)
    (final,) = events.Scalars("eval/final_loss")
    assert final.value == pytest.approx(row["metric_value"], rel=1e-6)


def test_every_run_stores_the_load_and_threads_it_was_timed_with(streamed):
    _, result = streamed
    info = result.rows[0]["info"]
    assert info["torch_threads"] >= 1 and info["cpu_count"] >= 1
    assert info["load_start"] >= 0 and info["load_end"] >= 0
