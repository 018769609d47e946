"""Weather trivial forecasts against values computed directly in the test."""

import numpy as np
import pytest
import torch

from domains.weather import trivial_forecasts as tf


def test_persistence_and_mean_by_hand():
    inputs = torch.tensor([[[1.0, 0.0], [2.0, 4.0]]])  # (1 window, context 2, 2 channels)
    targets = torch.tensor([[[3.0, 4.0], [2.0, 6.0], [2.0, 2.0]]])  # horizon 3
    # persistence predicts (2, 4) at every step: errors (1,0),(0,2),(0,-2) -> squares 1+0+0+4+0+4 = 9 over 6
    assert tf.persistence_mse(inputs, targets) == pytest.approx(9 / 6)
    # means (2, 4): errors (1,0),(0,2),(0,-2) -> the same 9 / 6
    assert tf.mean_mse(torch.tensor([2.0, 4.0]), targets) == pytest.approx(9 / 6)


def test_linear_fit_matches_numpy_lstsq_and_recovers_a_linear_rule():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 5, 3, generator=g)
    true_w = torch.randn(5, 2, generator=g, dtype=torch.float64)
    targets = (torch.einsum("blc,lh->bhc", inputs.double(), true_w) + 0.5).float()
    w, b = tf.fit_linear(inputs, targets)
    assert torch.allclose(w, true_w, atol=1e-4) and torch.allclose(b, torch.full((2,), 0.5, dtype=b.dtype), atol=1e-4)
    noisy = targets + 0.1 * torch.randn(targets.shape, generator=g)
    w, b = tf.fit_linear(inputs, noisy)
    x = inputs.double().transpose(1, 2).reshape(-1, 5).numpy()
    y = noisy.double().transpose(1, 2).reshape(-1, 2).numpy()
    ref, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    assert np.allclose(w.numpy(), ref[:-1], atol=1e-5) and np.allclose(b.numpy(), ref[-1], atol=1e-5)
    prediction = tf.linear_forecast((w, b), inputs)
    assert tf.mse(prediction, noisy) < tf.persistence_mse(inputs, noisy)
