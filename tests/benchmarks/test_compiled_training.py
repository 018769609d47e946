"""``run_all.py --compile``: the supervised loop trains through torch.compile, equal to eager to float rounding,
says so in the run's info, and is not part of a run's identity."""

import pytest

from benchmarks.cli import build_parser
from benchmarks.running.runner import execute
from tests.benchmarks.support import make_spec


@pytest.fixture(scope="module")
def eager_and_compiled(tmp_path_factory):
    # A 4-bit QAT LLaMA: the compiled graph also has to get through the fake quantization's autograd function.
    spec = make_spec(domain="llama", recipe="adam", lr=2e-3, steps=6, quant="int4", eval_every=0)
    root = tmp_path_factory.mktemp("compiled")
    return spec, execute(spec, root / "eager"), execute(spec, root / "compiled", compile_model=True)


def test_compiled_training_matches_eager_to_float_rounding(eager_and_compiled):
    _, eager, compiled = eager_and_compiled
    assert eager.status == compiled.status == "finished", (eager.error, compiled.error)
    eager_loss, compiled_loss = eager.curves[("train", "loss")], compiled.curves[("train", "loss")]
    assert compiled_loss.steps.tolist() == eager_loss.steps.tolist() == list(range(6))
    assert compiled_loss.values.tolist() == pytest.approx(eager_loss.values.tolist(), rel=1e-4)
    assert compiled.metric_value == pytest.approx(eager.metric_value, rel=1e-3)


def test_a_compiled_run_says_so_and_what_its_first_step_cost(eager_and_compiled):
    spec, eager, compiled = eager_and_compiled
    assert compiled.info["compiled"] is True and compiled.info["compile_seconds"] > 0
    assert "compiled" not in eager.info and "compile_seconds" not in eager.info
    assert compiled.spec.run_id == eager.spec.run_id == spec.run_id  # an execution choice, like the device


def test_the_compile_flag_reaches_the_runs():
    assert build_parser().parse_args(["--compile"]).compile_model is True
    assert build_parser().parse_args([]).compile_model is False
