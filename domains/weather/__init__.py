"""The ``weather`` domain: PatchTST forecasting under injected Gaussian anomalies (SPEC §2.4)."""

from domains.weather.domain import WeatherConfig, WeatherDomain

__all__ = ["WeatherDomain", "WeatherConfig"]
