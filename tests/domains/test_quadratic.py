"""The noisy quadratic domain: presets, validation, learning, determinism, spiky gradients, every recipe."""

import numpy as np
import pytest
import torch

import domains
import optimizers
from benchmarks.analysis import telemetry
from benchmarks.protocol.hparams import default_hparams
from benchmarks.running.run_logger import BufferedRunLogger
from domains.base import PRESETS, ConfigError, Diverged, RunContext

QUADRATIC = domains.get("quadratic")


def train(recipe="adam", seed=0, hparams=None, **overrides):
    logger = BufferedRunLogger()
    config = QUADRATIC.config("smoke", overrides)
    hparams = hparams or default_hparams(QUADRATIC, recipe, config)
    metrics = QUADRATIC.run(config, RunContext(recipe=recipe, hparams=hparams, seed=seed, logger=logger))
    return metrics, logger


def test_every_preset_is_a_valid_config_and_paper_is_the_largest():
    configs = {preset: QUADRATIC.config(preset) for preset in PRESETS}
    assert configs["paper"].dim > configs["cpu"].dim > configs["smoke"].dim
    assert configs["paper"].steps > configs["cpu"].steps > configs["smoke"].steps


@pytest.mark.parametrize("field, value", [("dim", 0), ("spike_prob", 1.5), ("noise_df", 0), ("condition_number", 0.5)])
def test_invalid_values_name_their_field(field, value):
    with pytest.raises(ConfigError, match=field):
        QUADRATIC.config("smoke", {field: value})


def test_studies_cover_main_lr_sweep_and_ablation_at_every_preset():
    studies = QUADRATIC.studies()
    assert set(studies["main"]["smoke"].recipes) == {"adam", "adam_clip", "spam", "stable_spam"}
    assert len(studies["lr_sweep"]["cpu"].lrs) >= 5
    assert "adam+moret+adagn+adaclip" in studies["ablation"]["paper"].recipes
    assert all(set(per_preset) == set(PRESETS) for per_preset in studies.values())


def test_training_lowers_the_exact_loss_and_logs_telemetry():
    metrics, logger = train()
    assert metrics["final_loss"] < 0.5 * logger.info["initial_loss"]
    curves = logger.curves()
    assert len(curves[("train", "loss")].steps) == QUADRATIC.config("smoke").steps
    assert {"grad_norm_before", "lr"} <= {name for _, name in curves}
    assert curves[("eval", "final_loss")].values[-1] == pytest.approx(metrics["final_loss"])


def test_same_seed_same_numbers_other_seed_other_numbers():
    first, second, other = train(seed=1)[1], train(seed=1)[1], train(seed=2)[1]
    loss = ("train", "loss")
    assert np.array_equal(first.curves()[loss].values, second.curves()[loss].values)
    assert not np.array_equal(first.curves()[loss].values, other.curves()[loss].values)


def test_gradient_spikes_show_in_the_gradient_norm_telemetry():
    _, spiky = train(spike_prob=0.03, spike_scale=1000.0, steps=400)
    _, calm = train(spike_prob=0.0, noise_df=1000.0, steps=400)

    def count(logger):
        return telemetry.spike_count(logger.curves()[("train", "grad_norm_before")].values)

    assert count(spiky) >= 3 > count(calm)


def test_a_huge_learning_rate_diverges():
    with pytest.raises(Diverged) as caught:
        train(hparams={"lr": 1e6})
    assert caught.value.step >= 1


@pytest.mark.parametrize("recipe", optimizers.available())
def test_every_recipe_trains_at_its_default_learning_rate(recipe):
    metrics, logger = train(recipe, steps=140)  # 140: long enough for SPAM's warm-up (134 steps)
    assert np.isfinite(metrics["final_loss"])
    assert metrics["final_loss"] < logger.info["initial_loss"]


def test_initial_loss_baseline_is_f_at_the_seeded_start_and_training_beats_it():
    config = QUADRATIC.config("smoke")
    h = np.logspace(-3.0, 0.0, 32)  # smoke: dim 32, condition number 1e3
    x0 = torch.randn(32, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    values = QUADRATIC.baselines(config, seed=5)
    assert values == {"initial": pytest.approx(0.5 * np.sum(h * x0 ** 2), rel=1e-6)}  # float32 model
    assert QUADRATIC.gate_baselines is None  # its one baseline gates
    assert QUADRATIC.baselines(config, seed=5) == values and QUADRATIC.baselines(config, seed=6) != values
    metrics, logger = train(seed=5)
    assert logger.info["initial_loss"] == values["initial"]
    assert metrics["final_loss"] < 0.5 * values["initial"]

