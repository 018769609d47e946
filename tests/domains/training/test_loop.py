"""The shared trainer's contract: gradient accumulation in the loop, evaluate(model, step) with series,
checkpoint cadence, one validation message format, a registry left as found."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import domains
from domains.base import ConfigError, Domain, RunContext
from domains.checkpoints import Cadence
from domains.fields import at_least, check, rule
from domains.training import TrainLoop, train
from domains.training.accumulation import forward_backward, micro_batches
from tests.support.loggers import ListLogger
from tests.support.registry import registered


def _mse(model, batch):
    inputs, targets = batch
    loss = ((model(inputs) - targets) ** 2).mean()
    return loss, {"first_target": targets[0, 0].detach()}


def test_micro_batches_give_the_whole_batch_loss_gradient_and_row_weighted_extras():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    batch = (torch.randn(4, 3), torch.arange(4.0).reshape(4, 1))
    assert [len(chunk[0]) for chunk in micro_batches(batch, 3)] == [3, 1]

    loss, extras = forward_backward(model, _mse, batch)
    whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    chunked_loss, chunked_extras = forward_backward(model, _mse, batch, micro_batch_size=3)
    assert chunked_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    for param, gradient in zip(model.parameters(), whole):
        torch.testing.assert_close(param.grad, gradient)
    # the first target of each chunk, weighted by its rows: 0 * 3/4 + 3 * 1/4
    assert extras["first_target"].item() == 0.0 and chunked_extras["first_target"].item() == pytest.approx(0.75)


def test_evaluate_gets_the_step_and_its_series_are_logged_not_returned():
    model = nn.Linear(2, 1)
    batches = torch.ones(6, 4, 2)
    seen = []

    def evaluate(net, step):
        seen.append(step)
        return {"bias": float(net.bias)}, {"step_seen": step}

    logger = ListLogger()
    result = train(model, lambda step: (batches[step], torch.zeros(4, 1)), lambda m, b: _mse(m, b)[0], evaluate,
                   TrainLoop(steps=6, eval_every=2), RunContext(recipe="adam", hparams={"lr": 0.1}, seed=0, logger=logger))
    assert seen == [2, 4, 6]
    assert [(step, values["step_seen"]) for step, values in logger.evals] == [(2, 2.0), (4, 4.0), (6, 6.0)]
    assert "step_seen" not in result and result["bias"] == logger.evals[-1][1]["bias"]


def test_cadence_saves_once_per_multiple_crossed_and_never_at_the_end():
    cadence = Cadence(every=100, budget=1000)
    assert not cadence.due(64) and cadence.due(128)
    cadence.saved(128)
    assert not cadence.due(192) and cadence.due(256) and not cadence.due(1000)
    assert not Cadence(every=0, budget=1000).due(500)
    assert not Cadence(every=100, budget=1000, last=300).due(356)  # resumed at 300


def test_validation_messages_have_one_format():
    class Config:
        dim, heads = 0, 3

    with pytest.raises(ConfigError, match=r"^mine: field 'dim' must be >= 1 \(got 0\)$"):
        check("mine", at_least(1, Config, "dim"))
    with pytest.raises(ConfigError, match=r"^mine: field 'heads' must divide 8 \(got 3\)$"):
        check("mine", rule("heads", 8 % Config.heads == 0, "must divide 8", Config.heads))
    for name in ("llama", "moe", "mujoco", "weather", "quadratic"):
        with pytest.raises(ConfigError, match=rf"^{name}: field 'steps' must be >= 1 \(got 0\)$"):
            domains.get(name).config("smoke", {"steps": 0})


def test_a_registered_domain_is_gone_after_the_block_and_a_built_in_comes_back():
    class Shadow(Domain):
        name, metric, Config, presets = "quadratic", "x", object, {}

        def run(self, config, ctx):
            return {}

    original = type(domains.get("quadratic"))
    with registered(Shadow) as shadow:
        assert isinstance(shadow, Shadow) and domains.get("quadratic") is shadow
    assert type(domains.get("quadratic")) is original and "quadratic" in domains.available()
