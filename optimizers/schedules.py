"""The cosine curves the recipes use, written once.

* Stable-SPAM's momentum decay (SPEC §1.1 item 6): ``beta1' = beta1 * scale`` and ``gamma1' = gamma1 * scale``
  with ``scale = eta_min + (1 - eta_min) * (1 + cos(pi * t / (total_T + 1))) / 2`` (PyTorch's
  CosineAnnealingLR with T_max = total_T + 1, base 1.0, in closed form).
* SPAM's warm-up after a momentum reset (SPEC §1.2): ``f = 1 - w(j)``, ``w(j) = 0.99 * (1 + cos(pi*j/(N+1)))/2``
  for ``j < N``, else 0.
"""
from __future__ import annotations

import math


def cosine_anneal(t: float, period: float, start: float, end: float) -> float:
    """Cosine from ``start`` (t = 0) to ``end`` (t = period): ``end + (start - end) * (1 + cos(pi t/period)) / 2``.

    Not clamped: past ``period`` the curve turns back up, as PyTorch's closed form does.
    """
    return end + (start - end) * (1.0 + math.cos(math.pi * t / period)) / 2.0


def momentum_scale(step: int, total_T: int | None, eta_min: float, *, hold: bool) -> float:
    """Stable-SPAM's factor on beta1 and gamma1 at global step ``step`` (1, 2, ...).

    1.0 when ``total_T`` is None. With ``hold`` (the mended variant) the factor stays at ``eta_min`` for
    ``step > total_T + 1``; without it (the authors' code) it follows the cosine back up.
    """
    if total_T is None:
        return 1.0
    period = total_T + 1
    if hold and step > period:
        step = period
    return cosine_anneal(step, period, 1.0, eta_min)


def spam_warmup_factor(j: int, warmup: int) -> float:
    """SPAM's update factor ``f = 1 - w(j)`` j steps after a reset (j = 0 on the reset step): 0.01 at j = 0,
    rising along a cosine to 1 at j = ``warmup``, and 1 from there on."""
    if j >= warmup:
        return 1.0
    return 1.0 - cosine_anneal(j, warmup + 1, 0.99, 0.0)
