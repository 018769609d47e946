"""Gaussian anomalies injected into training inputs (Stable-SPAM paper, time-series experiment; SPEC §2.4).

Per training batch, ``round(A * numel)`` input values chosen uniformly without replacement get Gaussian noise
of variance ``S * M`` (``noise="variance"``: the paper's ``N(0, S * max(X))`` read with the notation's second
parameter as the variance) or of standard deviation ``S * M`` (``noise="std"``: the same text read as a
standard deviation): A the fraction, S the severity and M the *scale* (a number, or one number per channel, the
last dimension), in the weather domain max |x| of the window the value belongs to (see :mod:`domains.weather`
for why). Targets, validation and test data are never touched: only the tensor handed in changes (a copy is
returned).

The draws come from a generator seeded by ``(seed, step)``, so a resumed run, or the same step of another
run with the same seed, sees exactly the same anomalies whatever happened before.
"""

from __future__ import annotations

import torch

from domains.training.rng import step_generator

_ANOMALY_STREAM = 0xA70  # keeps these draws independent of any other (seed, step)-seeded stream


NOISE_READINGS = ("std", "variance")


def inject_anomalies(inputs: torch.Tensor, fraction: float, severity: float, scale: float | torch.Tensor,
                     seed: int, step: int, noise: str = "std") -> torch.Tensor:
    """``inputs`` with a fraction ``fraction`` of entries shifted by Gaussian noise whose standard deviation is
    ``severity * scale`` (``noise="std"``) or ``sqrt(severity * scale)`` (``noise="variance"``).

    ``scale`` is a number or a tensor broadcastable to ``inputs`` (e.g. one value per channel). Returns
    ``inputs`` itself when nothing is to be injected (severity or fraction 0), else a new tensor.
    """
    if noise not in NOISE_READINGS:
        raise ValueError(f"noise must be one of {', '.join(NOISE_READINGS)}, not {noise!r}")
    count = round(fraction * inputs.numel())
    if severity == 0 or count == 0:
        return inputs
    generator = step_generator(seed, step, _ANOMALY_STREAM)
    where = torch.randperm(inputs.numel(), generator=generator)[:count]
    spread = severity * torch.as_tensor(scale, dtype=inputs.dtype).cpu().expand(inputs.shape).reshape(-1)[where]
    std = spread.sqrt() if noise == "variance" else spread
    draws = torch.randn(count, generator=generator, dtype=inputs.dtype) * std
    noisy = inputs.detach().flatten().clone()
    noisy[where.to(noisy.device)] += draws.to(noisy.device)
    return noisy.view_as(inputs)
