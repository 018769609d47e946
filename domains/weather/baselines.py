"""The weather domain's regime baselines, scored on exactly the test windows ``test_mse`` is measured on.

:mod:`domains.weather.trivial_forecasts` holds the forecasts; this module applies them to a run's data:

* ``persistence`` and ``training_mean`` (each channel's mean over the training rows) -- the regime gate;
* ``linear_clean`` -- the least-squares linear forecaster fitted on every clean training window;
* ``linear_anomalous`` -- the same forecaster fitted on the training windows the run's batches carry, anomalies
  injected (the domain hands in the batches).

The two linear fits are reference points for what a learned model can reach, not trivial predictors.
"""

from __future__ import annotations

from typing import Iterable

import torch

from domains.weather import trivial_forecasts as tf
from domains.weather.data import ForecastData

CHUNK = 1024  # windows per batch when streaming a split through the normal equations


def evaluation_windows(data: ForecastData) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N, context, C)`` and targets ``(N, horizon, C)`` of every test window, in order."""
    windows = data.windows("test")
    return windows.batch(torch.arange(len(windows)))


def training_means(data: ForecastData) -> torch.Tensor:
    """Each channel's mean over the training rows (standardised scale: ~0 by construction), ``(C,)``."""
    start, end = data.borders["train"]
    return data.series[start:end].double().mean(dim=0)


def linear_test_mse(data: ForecastData, training_batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Test MSE of the linear forecaster fitted on ``training_batches`` (``(inputs, targets)`` pairs)."""
    weights = tf.fit_linear_batches(training_batches)
    inputs, targets = evaluation_windows(data)
    return tf.mse(tf.linear_forecast(weights, inputs), targets)


def clean_baselines(data: ForecastData) -> dict[str, float]:
    """``persistence``, ``training_mean`` and ``linear_clean`` test MSEs (independent of seed and anomalies)."""
    inputs, targets = evaluation_windows(data)
    return {
        "persistence": tf.persistence_mse(inputs, targets),
        "training_mean": tf.mean_mse(training_means(data), targets),
        "linear_clean": linear_test_mse(data, data.windows("train").batches(CHUNK)),
    }
