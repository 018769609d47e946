"""Spike counting, steps-to-target and curve areas against hand-made series."""

import numpy as np

from benchmarks.analysis import telemetry


def _flat_noisy(n=600, seed=0):
    return 1.0 + 0.01 * np.random.default_rng(seed).standard_normal(n)


def test_two_injected_spikes_are_counted():
    series = _flat_noisy()
    series[250] += 1.0  # ~100 standard deviations
    series[450] += 1.0
    assert telemetry.spike_count(series) == 2
    steps = np.arange(len(series)) * 10
    assert list(telemetry.spike_steps(steps, series)) == [2500, 4500]


def test_a_flat_noisy_series_has_no_spike():
    assert telemetry.spike_count(_flat_noisy(seed=1)) == 0


def test_spikes_within_the_first_window_are_not_tested():
    series = _flat_noisy()
    series[50] += 1.0  # no full window of 100 preceding values yet
    series[99] += 1.0
    assert telemetry.spike_count(series) == 0
    clean = _flat_noisy()
    clean[100] += 1.0  # the first tested value: it has exactly 100 predecessors
    assert telemetry.spike_count(clean) == 1


def test_spikes_are_upward_and_need_the_threshold():
    series = _flat_noisy()
    series[300] -= 1.0  # a drop is not a spike
    assert telemetry.spike_count(series) == 0
    sd = 0.01
    series = _flat_noisy()
    series[300] = series[200:300].mean() + 3 * sd  # z about 3 < 5
    assert telemetry.spike_count(series) == 0
    assert telemetry.spike_count(series, threshold=2.0) >= 1


def test_a_spike_inflates_the_next_window():
    # One +1 outlier in a window of 100 raises its std to ~0.1, so a later +0.4 has z ~ 4 (< 5) ...
    series = _flat_noisy()
    series[300] += 1.0
    series[330] += 0.4
    assert telemetry.spike_count(series) == 1
    # ... while the same +0.4 more than 100 steps later (a clean window, std 0.01) has z ~ 40.
    series = _flat_noisy()
    series[300] += 1.0
    series[430] += 0.4
    assert telemetry.spike_count(series) == 2


def test_constant_windows_and_non_finite_values():
    series = np.ones(300)
    series[200] = 2.0  # sd of the window is 0: nothing is flagged
    assert telemetry.spike_count(series) == 0
    noisy = _flat_noisy()
    noisy[400] += 1.0
    with_nan = np.insert(noisy, 200, np.nan)  # dropped before analysis
    assert telemetry.spike_count(with_nan) == 1


def test_steps_to_target_and_smooth():
    steps = np.array([0, 10, 20, 30, 40])
    loss = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert telemetry.steps_to_target(steps, loss, 3.0) == 20
    assert telemetry.steps_to_target(steps, loss, 0.5) is None
    assert telemetry.steps_to_target(steps, -loss, -2.0, higher_is_better=True) == 30
    assert np.allclose(telemetry.smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])


def test_curve_area():
    steps = np.array([0, 1, 2])
    values = np.array([0.0, 2.0, 2.0])
    assert telemetry.curve_area(steps, values, normalized=False) == 3.0
    assert telemetry.curve_area(steps, values) == 1.5
    assert np.isnan(telemetry.curve_area([0], [1.0]))
