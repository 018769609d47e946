"""Trivial forecasts of the weather domain, scored like the model (MSE over every value of every test window).

* ``persistence``: every horizon step repeats the last context value of its channel;
* ``training mean``: every value is its channel's mean over the training split;
* ``linear``: one least-squares linear map from a channel's context to its horizon (plus a bias), shared by
  all channels (channel-independent, as PatchTST is), fitted on the training windows — on clean inputs and,
  for a run with anomalies, on the inputs with that run's anomalies injected.

Persistence and the training mean are the regime gate (a model that does not beat them by a margin has not
learned to forecast); the linear fits are reported as a reference point for what a learned model can reach.
"""

from __future__ import annotations

from typing import Iterable

import torch

RIDGE = 1e-6  # relative to the mean diagonal of X^T X: only guards an ill-conditioned solve


def mse(prediction: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean squared error over every value, in float64."""
    return float((prediction.double() - targets.double()).square().mean())


def persistence_mse(inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """MSE of the persistence forecast of ``targets`` ``(B, horizon, C)`` from ``inputs`` ``(B, context, C)``."""
    return mse(inputs[:, -1:, :].expand_as(targets), targets)


def mean_mse(channel_means: torch.Tensor, targets: torch.Tensor) -> float:
    """MSE of forecasting every value as its channel's training mean ``(C,)``."""
    return mse(channel_means.reshape(1, 1, -1).expand_as(targets), targets)


def fit_linear(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``(W (context, horizon), b (horizon,))`` with ``targets[:, :, c] ~ inputs[:, :, c] @ W + b``
    over every window and channel."""
    return fit_linear_batches([(inputs, targets)])


def fit_linear_batches(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit_linear` over the union of ``(inputs, targets)`` batches, accumulating the normal equations
    batch by batch (memory independent of the number of windows)."""
    gram = cross = None
    for inputs, targets in batches:
        x = inputs.double().transpose(1, 2).reshape(-1, inputs.shape[1])  # (B*C, context)
        y = targets.double().transpose(1, 2).reshape(-1, targets.shape[1])  # (B*C, horizon)
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        gram = x1.T @ x1 if gram is None else gram + x1.T @ x1
        cross = x1.T @ y if cross is None else cross + x1.T @ y
    if gram is None:
        raise ValueError("fit_linear_batches needs at least one batch")
    gram = gram + RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    solution = torch.linalg.solve(gram, cross)
    return solution[:-1], solution[-1]


def linear_forecast(weights: tuple[torch.Tensor, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """Apply a :func:`fit_linear` map to ``inputs`` ``(B, context, C)``: ``(B, horizon, C)``."""
    w, b = weights
    return (torch.einsum("blc,lh->bhc", inputs.double(), w) + b.reshape(1, -1, 1))
