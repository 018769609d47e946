"""Anomaly injection (SPEC §2.4): fraction, scale, determinism, and what it must never touch."""

from __future__ import annotations

import pytest
import torch

from domains.weather.anomalies import inject_anomalies
from domains.weather.data import load
from domains.weather.domain import TrainingBatches, WeatherDomain

SCALE = 3.0


def _added(severity: float, fraction: float = 0.1, seed: int = 0, step: int = 0) -> torch.Tensor:
    clean = torch.zeros(64, 96, 24)
    return inject_anomalies(clean, fraction, severity, SCALE, seed, step) - clean


def test_hits_the_requested_fraction():
    for fraction in (0.05, 0.1, 0.3):
        hit = float((_added(2.0, fraction) != 0).float().mean())
        assert abs(hit - fraction) <= 0.02 * fraction + 1e-6


def test_noise_std_is_severity_times_scale():
    for severity in (1.0, 2.0, 5.0):
        added = _added(severity)
        std = float(added[added != 0].std())
        assert std == pytest.approx(severity * SCALE, rel=0.03)


def test_read_as_a_variance_the_noise_std_is_the_root_of_severity_times_scale():
    """N(0, S * M) with the notation's second parameter the variance: std sqrt(S * M) (sqrt(15) = 3.87 at S = 5,
    M = 3), the same hits and draws as the std reading, only scaled."""
    clean = torch.zeros(64, 96, 24)
    for severity in (2.0, 5.0):
        added = inject_anomalies(clean, 0.1, severity, SCALE, 0, 0, noise="variance")
        assert float(added[added != 0].std()) == pytest.approx((severity * SCALE) ** 0.5, rel=0.03)
        as_std = inject_anomalies(clean, 0.1, severity, SCALE, 0, 0, noise="std")
        assert torch.allclose(added * (severity * SCALE) ** 0.5, as_std, atol=1e-5)


def test_an_unknown_noise_reading_is_refused():
    with pytest.raises(ValueError, match="noise must be one of std, variance, not 'sd'"):
        inject_anomalies(torch.zeros(4, 8, 2), 0.5, 2.0, SCALE, 0, 0, noise="sd")


def test_a_per_channel_scale_applies_to_its_own_channel():
    scale = torch.tensor([1.0, 10.0])
    added = inject_anomalies(torch.zeros(200, 100, 2), 0.2, 2.0, scale, seed=0, step=0)
    for channel in (0, 1):
        values = added[..., channel]
        assert float(values[values != 0].std()) == pytest.approx(2.0 * float(scale[channel]), rel=0.05)


def test_severity_or_fraction_zero_is_the_identity():
    inputs = torch.randn(8, 32, 4)
    assert torch.equal(inject_anomalies(inputs, 0.1, 0.0, SCALE, 0, 5), inputs)
    assert torch.equal(inject_anomalies(inputs, 0.0, 5.0, SCALE, 0, 5), inputs)


def test_same_seed_and_step_give_the_same_anomalies():
    assert torch.equal(_added(2.0, seed=3, step=17), _added(2.0, seed=3, step=17))
    assert not torch.equal(_added(2.0, seed=3, step=17), _added(2.0, seed=3, step=18))
    assert not torch.equal(_added(2.0, seed=3, step=17), _added(2.0, seed=4, step=17))


def test_the_input_tensor_is_not_modified_in_place():
    inputs = torch.randn(8, 32, 4)
    before = inputs.clone()
    inject_anomalies(inputs, 0.5, 5.0, SCALE, 0, 0)
    assert torch.equal(inputs, before)


@pytest.fixture(scope="module")
def setup():
    domain = WeatherDomain()
    config = domain.config("smoke", {"severity": 5.0})
    data = load(None, config.context_length, config.horizon)
    return config, data


def test_training_batches_touch_only_the_inputs(setup):
    config, data = setup
    series_before = data.series.clone()
    windows = data.windows("train")
    noisy = TrainingBatches(windows, data.training_inputs_absmax(), config, seed=1, device=torch.device("cpu"))
    clean_config = WeatherDomain().config("smoke", {"severity": 0.0})
    clean = TrainingBatches(windows, data.training_inputs_absmax(), clean_config, seed=1, device=torch.device("cpu"))
    for step in (0, 1, 500):
        (noisy_x, noisy_y), (clean_x, clean_y) = noisy(step), clean(step)
        assert torch.equal(noisy_y, clean_y)  # targets untouched
        changed = float((noisy_x != clean_x).float().mean())
        assert changed == pytest.approx(config.anomaly_fraction, abs=0.005)
    assert torch.equal(data.series, series_before)  # the series (val and test included) stays clean


def test_training_batches_depend_only_on_seed_and_step(setup):
    config, data = setup
    windows, scale, cpu = data.windows("train"), data.training_inputs_absmax(), torch.device("cpu")
    first = TrainingBatches(windows, scale, config, seed=2, device=cpu)
    for step in range(5):
        first(step)
    resumed = TrainingBatches(windows, scale, config, seed=2, device=cpu)
    for a, b in zip(first(7), resumed(7)):
        assert torch.equal(a, b)
    # the scale is, per channel, the max |x| over the standardised training inputs
    inputs = data.series[: data.borders["train"][1] - config.horizon]
    assert torch.equal(scale, inputs.abs().amax(dim=0))
    assert float(scale[data.channels.index("EWR.precip")]) > 20 > float(scale[data.channels.index("EWR.temp")])


@pytest.mark.parametrize("noise", ["variance", "std"])
def test_the_window_scale_is_each_windows_own_max_per_channel(setup, noise):
    """anomaly_max="window" (the default): the noise on a hit value has variance (``anomaly_noise="variance"``,
    the default) or std (``"std"``) S x max |x| over that window's context of that channel. Checked
    statistically: every value hit (fraction 1), the added noise divided by its window-channel max (its square
    root for the variance reading) has std S (sqrt(S))."""
    config, data = setup
    assert config.anomaly_max == "window" and config.anomaly_noise == "variance"
    from domains.weather.domain import anomaly_scale

    assert anomaly_scale(data, "window") is None
    everywhere = WeatherDomain().config("smoke", {"severity": 2.0, "anomaly_fraction": 1.0, "anomaly_noise": noise})
    batches = TrainingBatches(data.windows("train"), None, everywhere, seed=0, device=torch.device("cpu"))
    clean = TrainingBatches(data.windows("train"), None, WeatherDomain().config("smoke"), seed=0,
                            device=torch.device("cpu"))
    (noisy, _), (inputs, _) = batches(3), clean(3)
    window_max = inputs.abs().amax(dim=1, keepdim=True)
    ratio = (noisy - inputs) / (window_max.sqrt() if noise == "variance" else window_max)
    expected = 2.0 ** 0.5 if noise == "variance" else 2.0
    assert float(ratio.std()) == pytest.approx(expected, rel=0.03)
    # a small-valued window gets proportionally small noise: the per-window ratio is the same law everywhere
    quiet, loud = window_max.flatten().argsort()[[0, -1]]
    flat = ratio.transpose(1, 2).reshape(-1, ratio.shape[1])
    assert float(flat[quiet].std()) == pytest.approx(expected, rel=0.5)
    assert float(flat[loud].std()) == pytest.approx(expected, rel=0.5)
