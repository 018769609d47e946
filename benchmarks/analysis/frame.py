"""The store as pandas: one row per run (``runs_frame``), grouped per study (``study_groups``).

Every output (CSV, tables, plots, claims, report) reads the store through this module only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterator

import pandas as pd

from benchmarks.analysis import telemetry
from benchmarks.store import Store
from domains.lm.precision import upgrade_stored_config

# Config fields that name the algorithm, looked up in this order.
ALGORITHM_FIELDS = ("algo", "algorithm")
# Stores written before the ``budget`` column held every run's length left it NULL when no suite budget was
# given; then the engine's only budget field was the config's ``steps``.
LEGACY_BUDGET_FIELD = "steps"


def runs_frame(store: Store) -> pd.DataFrame:
    """One row per stored run (an LM config of the old single ``precision`` read as today's ``compute`` and
    ``quant``, :func:`domains.lm.precision.upgrade_stored_config`), with derived columns:

    ``budget`` (the stored run length; for a run stored without one, its config's ``steps``),
    ``label`` (recipe plus its variant), ``config_key`` (the config as canonical JSON, for grouping),
    ``grad_norm_spikes`` and ``loss_spikes`` (:mod:`benchmarks.analysis.telemetry` on the logged curves; NaN when
    the run logged no such curve), ``eval_area`` (the headline metric's mean level over its evaluation curve,
    :func:`benchmarks.analysis.telemetry.curve_area`; NaN with fewer than two evaluations).
    """
    # Stored LM configs from before the precision split hold ``precision`` alone: read as (compute, quant), so they
    # group with today's runs of the same setting (domains.lm.precision).
    rows = [{**row, "config": upgrade_stored_config(row["domain"], row["config"])} for row in store.runs()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["budget"] = [_budget(row) for row in rows]
    frame["label"] = [row["recipe"] + (f" [{row['variant']}]" if row["variant"] else "") for row in rows]
    frame["config_key"] = [json.dumps(row["config"], sort_keys=True) for row in rows]
    ids = frame["run_id"].tolist()
    for column, series in (("grad_norm_spikes", "grad_norm_before"), ("loss_spikes", "loss")):
        counts = {i: float(telemetry.spike_count(c.values)) for i, c in store.iter_curves("train", series, ids)}
        frame[column] = [counts.get(i, math.nan) for i in ids]
    areas = {}
    for metric, runs in frame.groupby("metric"):
        areas.update({i: telemetry.curve_area(c.steps, c.values) for i, c in store.iter_curves("eval", metric, runs["run_id"])})
    frame["eval_area"] = [areas.get(i, math.nan) for i in ids]
    return frame


def _budget(row: dict) -> int | None:
    if row["budget"] is not None:
        return int(row["budget"])
    legacy = row["config"].get(LEGACY_BUDGET_FIELD)
    return int(legacy) if isinstance(legacy, (int, float)) else None


def flat_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The long-format table of ``runs.csv``: nested columns flattened to ``config.*``, ``hparams.*``,
    ``final.*`` and ``info.*``; list values as JSON text; studies joined with ``;``."""
    if frame.empty:
        return frame
    base = frame.drop(columns=["config", "hparams", "overrides", "final_metrics", "info", "config_key", "traceback"])
    base = base.assign(studies=[";".join(s) for s in frame["studies"]])
    parts = [base]
    for column, prefix in (("config", "config"), ("hparams", "hparams"), ("final_metrics", "final"), ("info", "info")):
        expanded = pd.DataFrame([{f"{prefix}.{k}": _scalar(v) for k, v in d.items()} for d in frame[column]],
                                index=frame.index)
        parts.append(expanded)
    return pd.concat(parts, axis=1)


def _scalar(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


@dataclass
class StudyGroup:
    """The runs of one (study, domain, preset), and the config fields that vary among them."""

    study: str
    domain: str
    preset: str
    runs: pd.DataFrame
    grid_fields: list[str]

    def column_key(self, config: dict) -> str:
        """The column a run belongs to: ``field=value`` of the varying fields (``all`` when none vary)."""
        return ", ".join(f"{f}={config.get(f)}" for f in self.grid_fields) or "all"

    def lr_swept(self, label: str) -> bool:
        """Whether this group ran ``label`` at more than one LR."""
        return self.runs.loc[self.runs["label"] == label, "lr"].nunique() > 1

    def row_key(self, run: pd.Series) -> str:
        """The table row of a run: its label, plus ``lr=`` when that label's LR was swept."""
        return f"{run['label']} lr={run['lr']:g}" if self.lr_swept(run["label"]) else run["label"]

    def describe(self) -> str:
        """One line stating the domain, preset, algorithm, budget, metric and number of seeds."""
        runs = self.runs
        first = runs.iloc[0]
        direction = "higher" if first["higher_is_better"] else "lower"
        budgets = sorted({int(b) for b in runs["budget"].dropna()})
        budget = "?" if not budgets else (f"{budgets[0]}" if len(budgets) == 1 else f"{budgets[0]}–{budgets[-1]}")
        unit = first["budget_unit"] or "steps"
        algos = sorted({str(c.get(f)) for c in runs["config"] for f in ALGORITHM_FIELDS if f in c})
        algo = f", algorithm {'/'.join(algos)}" if algos else ""
        seeds = runs["seed"].nunique()
        return (f"domain {self.domain}, preset {self.preset}{algo}, budget {budget} {unit}, "
                f"metric {first['metric']} ({direction} is better), {seeds} seed(s), {len(runs)} run(s)")


def at_best_lr(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs at the best LR among ``runs`` (one recipe, one config): the LR with the fewest non-finished
    seeds, then the best mean finished metric."""
    if runs["lr"].nunique() <= 1:
        return runs
    higher = bool(runs.iloc[0]["higher_is_better"])

    def rank(item):
        group = item[1]
        finished = group.loc[group["status"] == "finished", "metric_value"].dropna()
        mean = finished.mean() if len(finished) else (-math.inf if higher else math.inf)
        return (group["status"] != "finished").mean(), -mean if higher else mean

    best_lr = min(runs.groupby("lr"), key=rank)[0]
    return runs[runs["lr"] == best_lr]


def study_groups(frame: pd.DataFrame) -> Iterator[StudyGroup]:
    """Every (study, domain, preset) with runs, in sorted order; runs without a study go under ``adhoc``."""
    if frame.empty:
        return
    exploded = frame.assign(study=[s or ["adhoc"] for s in frame["studies"]]).explode("study")
    for (study, domain, preset), runs in exploded.groupby(["study", "domain", "preset"], sort=True):
        yield StudyGroup(study, domain, preset, runs.reset_index(drop=True), varying_fields(runs))


def varying_fields(runs: pd.DataFrame) -> list[str]:
    """Config fields whose value differs between runs (the grid's axes), sorted."""
    keys = sorted({k for c in runs["config"] for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in runs["config"]}) > 1]


def file_stem(name: str) -> str:
    """``name`` made safe as a file name (letters, digits and ``-_.+`` kept, anything else ``-``)."""
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "-" for ch in name)
