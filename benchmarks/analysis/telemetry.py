"""Analysis of per-step curves: spike counts, steps to a target, area under a curve.

Spike definition (SPEC §3, the paper's Table 10 protocol), exactly:

* drop non-finite values, keep the order;
* value ``x[i]`` with ``i >= K`` is tested against the mean ``mu`` and the population standard deviation
  ``sd`` (ddof = 0) of the K values immediately before it, ``x[i-K:i]``; the first K values are never tested
  (there is no full window yet);
* it is a spike when ``sd > 0`` and ``(x[i] - mu) / sd > threshold`` (upward only: a sudden drop of the
  gradient norm is not a spike). A constant window (``sd == 0``) flags nothing;
* windows include earlier spikes (a plain rolling window, as in the paper): a spike inflates ``sd`` for the
  next K steps (one outlier of height M in a window of 100 gives ``sd`` ~ M/10), so a smaller spike within
  K steps of a large one may go uncounted;
* defaults K = 100, threshold = 5.

The same detector counts loss spikes on the training-loss curve.
"""

from __future__ import annotations

import numpy as np

SPIKE_WINDOW = 100
SPIKE_THRESHOLD = 5.0


def spike_mask(values, window: int = SPIKE_WINDOW, threshold: float = SPIKE_THRESHOLD) -> np.ndarray:
    """Boolean mask over the finite values of ``values``: True where a value is a spike (definition above)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    mask = np.zeros(len(x), dtype=bool)
    if len(x) <= window:
        return mask
    windows = np.lib.stride_tricks.sliding_window_view(x[:-1], window)  # windows[j] = x[j : j+K], precedes x[j+K]
    mu = windows.mean(axis=1)
    sd = windows.std(axis=1)
    tested = x[window:]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (tested - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    mask[window:] = z > threshold
    return mask


def spike_count(values, window: int = SPIKE_WINDOW, threshold: float = SPIKE_THRESHOLD) -> int:
    """Number of spikes in a series (gradient norm or loss), as defined in this module's docstring."""
    return int(spike_mask(values, window, threshold).sum())


def spike_steps(steps, values, window: int = SPIKE_WINDOW, threshold: float = SPIKE_THRESHOLD) -> np.ndarray:
    """The steps at which spikes occur (for marking them on a plot)."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    return steps[finite][spike_mask(values[finite], window, threshold)]


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (shorter at the start); NaN-free input expected."""
    x = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(x) == 0:
        return x.copy()
    csum = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def steps_to_target(steps, values, target: float, higher_is_better: bool = False) -> int | None:
    """The first step at which ``values`` reaches ``target`` (<= when lower is better), or None if never."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    reached = values >= target if higher_is_better else values <= target
    hits = np.flatnonzero(reached & np.isfinite(values))
    return int(steps[hits[0]]) if len(hits) else None


def curve_area(steps, values, normalized: bool = True) -> float:
    """Trapezoid area under ``values`` over ``steps``; divided by the step span when ``normalized``
    (i.e. the curve's mean level, comparable across budgets). NaN for fewer than two finite points."""
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    if len(steps) < 2 or steps[-1] == steps[0]:
        return float("nan")
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(steps)) / 2.0)
    return area / float(steps[-1] - steps[0]) if normalized else area
