"""The weather domain end to end: real PatchTST, real data, real optimizers, smoke preset."""

from __future__ import annotations

import math

import pytest

import domains
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import default_hparams
from domains.base import ConfigError, RunContext
from tests.support.loggers import DyingLogger, Killed, ListLogger


@pytest.mark.parametrize("recipe,severity", [("adam", 0.0), ("stable_spam", 5.0)])
def test_smoke_run_gives_a_finite_test_mse(recipe, severity):
    domain = domains.get("weather")
    config = domain.config("smoke", {"severity": severity, "eval_every": 60})
    logger = ListLogger()
    ctx = RunContext(recipe=recipe, hparams=default_hparams(domain, recipe, config), seed=0, logger=logger)
    metrics = domain.run(config, ctx)
    assert math.isfinite(metrics["test_mse"]) and math.isfinite(metrics["test_mae"])
    assert len(logger.steps) == config.steps
    val_points = [step for step, values in logger.evals if "val_mse" in values]
    assert val_points == [60, 120, config.steps]
    assert logger.evals[-1] == (config.steps, {"test_mse": metrics["test_mse"], "test_mae": metrics["test_mae"]})
    assert logger.info["channels"] == 24 and logger.info["anomaly_scale"] == "per window"


def test_config_errors_name_the_field():
    domain = domains.get("weather")
    with pytest.raises(ConfigError, match="'heads' must divide d_model"):
        domain.config("smoke", {"heads": "3"})
    with pytest.raises(ConfigError, match="anomaly_fraction"):
        domain.config("smoke", {"anomaly_fraction": "1.5"})
    with pytest.raises(ConfigError, match="severity"):
        domain.config("smoke", {"severity": "x"})


def test_severity_study_and_defaults():
    domain = domains.get("weather")
    assert domain.default_study == "severity"
    spec = studies_for(domain)["severity"]["cpu"]
    assert spec.recipes == ("adam", "spam", "stable_spam")
    assert spec.grid["severity"] == (0.0, 2.0, 5.0) and spec.seeds == 10
    assert studies_for(domain)["main"] == studies_for(domain)["severity"]
    for preset in domain.presets:
        config = domain.config(preset)
        hparams = default_hparams(domain, "stable_spam", config)
        assert hparams["total_T"] == config.steps and hparams["reset_interval"] == int(config.steps / 20 + 0.5)
        assert (hparams["gamma1"], hparams["gamma2"]) == (0.85, 0.99999)  # fp32: the 16-bit stand-in
        assert default_hparams(domain, "lion", config)["lr"] == pytest.approx(config.peak_lr / 5)


def test_a_killed_run_resumes_with_the_same_data_and_anomalies(tmp_path):
    domain = domains.get("weather")
    config = domain.config("smoke", {"severity": 5.0, "checkpoint_every": 4, "steps": 24})
    hparams = default_hparams(domain, "stable_spam", config)

    def run(logger, workdir):
        ctx = RunContext(recipe="stable_spam", hparams=hparams, seed=3, logger=logger, workdir=workdir)
        return domain.run(config, ctx)

    straight_logger = ListLogger()
    straight = run(straight_logger, None)
    with pytest.raises(Killed):
        run(DyingLogger(die_at=9), tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()
    resumed_logger = ListLogger()
    resumed = run(resumed_logger, tmp_path)
    assert resumed["test_mse"] == straight["test_mse"]
    assert resumed_logger.steps == straight_logger.steps  # restored steps 0-7, then the same losses from 8 on
