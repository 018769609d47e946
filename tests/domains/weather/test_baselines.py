"""The weather domain's regime baselines on the real smoke data, against loops and fits written in the test."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import domains
from benchmarks.protocol.hparams import default_hparams
from domains.base import RunContext
from domains.weather import domain as weather_domain
from domains.weather.data import load
from tests.support.loggers import ListLogger


@pytest.fixture(scope="module")
def weather():
    return domains.get("weather")


@pytest.fixture(scope="module")
def smoke(weather):
    config = weather.config("smoke")
    data = load(config.data_path, config.context_length, config.horizon)
    return config, data, data.series.double().numpy()


def window_rows(data):
    """Row ranges ``(context rows, target rows)`` of every test window, from the split borders."""
    start, end = data.borders["test"]
    first_target = start + data.context
    return [(range(t - data.context, t), range(t, t + data.horizon))
            for t in range(first_target, end - data.horizon + 1)]


def test_gating_baselines_match_loops_over_the_test_windows(weather, smoke):
    config, data, series = smoke
    values = weather.baselines(config, seed=0)
    assert weather.gate_baselines == ("persistence", "training_mean")
    assert set(values) == {"persistence", "training_mean", "linear_clean", "linear_anomalous"}
    rows = window_rows(data)
    assert len(rows) == len(data.windows("test"))
    train_mean = series[: int(len(series) * 0.7)].mean(axis=0)  # LTSF split: the first 70% of the rows
    persistence = [np.mean((series[list(target)] - series[context[-1]]) ** 2) for context, target in rows]
    mean = [np.mean((series[list(target)] - train_mean) ** 2) for _, target in rows]
    assert values["persistence"] == pytest.approx(np.mean(persistence), rel=1e-9)
    assert values["training_mean"] == pytest.approx(np.mean(mean), rel=1e-9)


def test_clean_linear_baseline_is_numpy_least_squares_on_every_training_window(weather, smoke):
    config, data, series = smoke
    context, horizon = data.context, data.horizon
    n_train = data.borders["train"][1]
    windows = np.lib.stride_tricks.sliding_window_view(series[:n_train], context + horizon, axis=0)  # (N, C, L+H)
    x = windows[:, :, :context].reshape(-1, context)
    y = windows[:, :, context:].reshape(-1, horizon)
    solution, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    errors = [np.mean(((series[list(ctx)].T @ solution[:-1] + solution[-1]).T - series[list(target)]) ** 2)
              for ctx, target in window_rows(data)]
    assert weather.baselines(config, seed=0)["linear_clean"] == pytest.approx(np.mean(errors), rel=1e-5)


def test_anomalous_linear_fit_uses_the_runs_epoch_zero_batches(weather, smoke):
    config, data, series = weather.config("smoke", {"severity": 2.0}), smoke[1], smoke[2]
    batches = weather_domain.TrainingBatches(data.windows("train"), weather_domain.anomaly_scale(data, config.anomaly_max),
                                             config, seed=1, device=torch.device("cpu"))
    pairs = [batches(step) for step in range(len(data.windows("train")) // config.batch_size)]
    x = torch.cat([inputs for inputs, _ in pairs]).double().transpose(1, 2).reshape(-1, data.context).numpy()
    y = torch.cat([targets for _, targets in pairs]).double().transpose(1, 2).reshape(-1, data.horizon).numpy()
    solution, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    errors = [np.mean(((series[list(ctx)].T @ solution[:-1] + solution[-1]).T - series[list(target)]) ** 2)
              for ctx, target in window_rows(data)]
    values = weather.baselines(config, seed=1)
    assert values["linear_anomalous"] == pytest.approx(np.mean(errors), rel=1e-5)
    clean = weather.baselines(weather.config("smoke"), seed=1)
    assert clean["linear_anomalous"] == clean["linear_clean"]  # S = 0: the run's inputs are the clean windows
    assert values["linear_anomalous"] > clean["linear_clean"]  # noisy inputs bias the fit (errors in variables)
    other_seed = weather.baselines(config, seed=2)
    assert other_seed["linear_anomalous"] != values["linear_anomalous"]
    assert {k: v for k, v in other_seed.items() if k != "linear_anomalous"} == \
        {k: v for k, v in values.items() if k != "linear_anomalous"}


def test_deterministic_across_a_cleared_cache(weather):
    config = weather.config("smoke", {"severity": 5.0})
    first = weather.baselines(config, seed=0)
    weather_domain._CLEAN_BASELINES.clear()
    weather_domain._ANOMALOUS_LINEAR.clear()
    assert weather.baselines(config, seed=0) == first


class PersistenceModel(torch.nn.Module):
    """Forecasts the last context value, through the interface ``forecast_errors`` calls."""

    def __init__(self, horizon: int):
        super().__init__()
        self.horizon = horizon

    def forward(self, past_values):
        return SimpleNamespace(prediction_outputs=past_values[:, -1:, :].expand(-1, self.horizon, -1))


def test_the_models_scoring_gives_the_persistence_value_and_a_trained_model_beats_the_mean(weather, smoke):
    config, data, _ = smoke
    values = weather.baselines(config, seed=0)
    scored = weather_domain.forecast_errors(PersistenceModel(config.horizon), data.windows("test"), torch.device("cpu"))
    assert scored["mse"] == pytest.approx(values["persistence"], rel=1e-5)  # test_mse's own path, float32 sums
    longer = weather.config("smoke", {"steps": 60})
    metrics = weather.run(longer, RunContext(recipe="adam", hparams=default_hparams(weather, "adam", longer), seed=0,
                                             logger=ListLogger()))
    assert metrics["test_mse"] < values["training_mean"]
