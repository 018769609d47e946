"""Regime gates (SPEC §4): is a cell's trained model better than what a trivial predictor reaches on the same data?

Every domain computes its trivial baselines (:meth:`domains.base.Domain.baselines`: bigram perplexity,
persistence forecasts, the untrained policy's return, ...) on exactly the data it scores its models on. The
runner stores them with each run as final metrics named ``baseline/<name>`` (:func:`baseline_metrics`); for runs
stored before that, :func:`attach_baselines` computes them at report time (cached per domain, preset, config
and seed). A failure, a domain that computes none, or one that is not registered in this process gives ``{}``:
*regime unknown*.

A **cell** is the runs of one recipe at one config (and one LR). It is **in regime** when the mean of its
finished runs' metric beats the strongest gating baseline (``Domain.gate_baselines``; the mean over the cell's
seeds of each baseline, then the best of them) by the margin ``MARGIN``:

* lower is better: ``mean <= (1 - MARGIN) x baseline`` (10% below a bigram's perplexity, a persistence MSE);
* higher is better: ``mean >= baseline + MARGIN x |baseline|`` (returns may be negative, so the margin is a
  fraction of the baseline's magnitude; an untrained policy at 995 needs 1094.5, one at -0.38 needs -0.35).
* a domain whose metric is a log (``Domain.gate_scale = "log"``: a loss in nats) is gated on ``exp`` of it, so an
  LM is held to the same rule whether it reports perplexity or loss: ``exp(mean) <= 0.9 x exp(baseline)``, i.e.
  ``mean <= baseline + ln 0.9`` (0.105 nats below the bigram's loss).

Why 10%: a model that is only a few percent better than a bigram or than repeating the last value has learned
little beyond what a counting or copying rule knows, and optimizer comparisons there speak about a regime the
paper never trained in; 10% is large against the seed-to-seed spread of every committed cell (1-3%), so the
gate is not decided by noise. A cell whose runs all diverged or failed is out of regime.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

import domains
from benchmarks.analysis.frame import at_best_lr

MARGIN = 0.10
PREFIX = "baseline/"

_COMPUTED: dict[tuple, dict[str, float]] = {}


def baseline_metrics(baselines: Mapping[str, float]) -> dict[str, float]:
    """``{"baseline/<name>": value}`` for the finite values of ``baselines`` (how the runner stores them)."""
    return {f"{PREFIX}{name}": float(v) for name, v in baselines.items() if v is not None and math.isfinite(v)}


def stored_baselines(final_metrics: Mapping[str, Any]) -> dict[str, float]:
    """The baselines stored among a run's final metrics, by name (``{}`` when none)."""
    return {key[len(PREFIX):]: float(value) for key, value in (final_metrics or {}).items()
            if key.startswith(PREFIX) and value is not None and math.isfinite(float(value))}


def compute_baselines(domain: str, preset: str, config: Mapping[str, Any], seed: int) -> dict[str, float]:
    """``Domain.baselines`` for a stored run's domain, preset, config and seed; ``{}`` when the domain is not
    registered, computes none, or fails (regime unknown). Cached per (domain, preset, config, seed)."""
    key = (domain, preset, json.dumps(config, sort_keys=True), int(seed))
    if key not in _COMPUTED:
        try:
            adapter = domains.get(domain)
            values = adapter.baselines(adapter.config(preset, dict(config)), int(seed))
            _COMPUTED[key] = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        except Exception:  # noqa: BLE001 -- any failure means "regime unknown", never a crashed report
            _COMPUTED[key] = {}
    return _COMPUTED[key]


def attach_baselines(frame: pd.DataFrame, compute: bool = True) -> pd.DataFrame:
    """``frame`` with a ``baselines`` column (name -> value per run): the stored ones, else (``compute``) those
    of :func:`compute_baselines`, else ``{}``."""
    if frame.empty:
        return frame.assign(baselines=[])
    values = []
    for row in frame.itertuples():
        stored = stored_baselines(row.final_metrics)
        if not stored and compute and row.status != "failed":
            stored = compute_baselines(row.domain, row.preset, row.config, row.seed)
        values.append(stored)
    return frame.assign(baselines=values)


def registered(domain: str) -> "domains.base.Domain | None":
    """The adapter of ``domain`` when it is registered in this process, else None (a stored run of a domain loaded
    elsewhere: its gate settings fall back to the defaults)."""
    try:
        return domains.get(domain)
    except ValueError:
        return None


def gate_names(domain: str, names) -> list[str]:
    """The names among ``names`` that gate the regime for ``domain`` (all of them when it declares none, or
    when it is not registered here)."""
    adapter = registered(domain)
    gating = adapter.gate_baselines if adapter is not None else None
    return sorted(n for n in names if gating is None or n in gating)


def gate_scale(domain: str) -> str:
    """``"log"`` or ``"linear"``: how the margin applies to ``domain``'s metric (linear when not registered)."""
    adapter = registered(domain)
    return adapter.gate_scale if adapter is not None else "linear"


def required_value(baseline: float, higher_is_better: bool, margin: float = MARGIN, scale: str = "linear") -> float:
    """The metric value a cell must reach (at least / at most) to beat ``baseline`` by ``margin``."""
    if scale == "log":
        shift = math.log1p(margin) if higher_is_better else math.log1p(-margin)
        return baseline + shift
    return baseline + margin * abs(baseline) if higher_is_better else (1 - margin) * baseline


def beats_by_margin(value: float, baseline: float, higher_is_better: bool, margin: float = MARGIN,
                    scale: str = "linear") -> bool:
    """Whether ``value`` beats ``baseline`` by ``margin`` (module docstring)."""
    if not (math.isfinite(value) and math.isfinite(baseline)):
        return False
    need = required_value(baseline, higher_is_better, margin, scale)
    return value >= need if higher_is_better else value <= need


def strongest_gate(rows: pd.DataFrame) -> tuple[str, float] | None:
    """(name, value) of the strongest gating baseline of a cell: each baseline averaged over the cell's runs
    that have it, then the best of them in the metric's direction; None when no run has a baseline."""
    if rows.empty or "baselines" not in rows:
        return None
    names = sorted({n for b in rows["baselines"] for n in b})
    names = gate_names(rows.iloc[0]["domain"], names)
    if not names:
        return None
    means = {n: float(np.mean([b[n] for b in rows["baselines"] if n in b])) for n in names}
    higher = bool(rows.iloc[0]["higher_is_better"])
    best = max(means, key=means.get) if higher else min(means, key=means.get)
    return best, means[best]


def cell_regime(rows: pd.DataFrame, margin: float = MARGIN) -> tuple[bool | None, str]:
    """(state, text) of one cell (the runs of one recipe at one config and LR, from a frame that went through
    :func:`attach_baselines`): True in regime, False out of regime, None unknown (no baselines)."""
    gate = strongest_gate(rows)
    if gate is None:
        return None, "regime unknown (no baselines)"
    name, baseline = gate
    higher = bool(rows.iloc[0]["higher_is_better"])
    finished = rows.loc[rows["status"] == "finished", "metric_value"].dropna()
    if finished.empty:
        return False, f"out of regime: no finished run (strongest baseline {name} {baseline:.4g})"
    mean = float(finished.mean())
    scale = gate_scale(rows.iloc[0]["domain"])
    need = required_value(baseline, higher, margin, scale)
    relation = ">=" if higher else "<="
    on = " on exp(metric)" if scale == "log" else ""
    if beats_by_margin(mean, baseline, higher, margin, scale):
        return True, f"in regime: {mean:.4g} {relation} {need:.4g} ({name} {baseline:.4g}, margin {margin:.0%}{on})"
    return False, (f"out of regime: {mean:.4g} vs {name} {baseline:.4g} "
                   f"(needs {relation} {need:.4g}, margin {margin:.0%}{on})")


def condition_regime(runs: pd.DataFrame, margin: float = MARGIN) -> str:
    """A short verdict for one condition (every recipe and seed of one domain, preset and config point): each
    recipe is judged at its best LR (best mean over finished seeds) with :func:`cell_regime`."""
    states = [cell_regime(at_best_lr(recipe_runs), margin)[0]
              for _, recipe_runs in runs.groupby("label" if "label" in runs else "recipe")]
    if all(state is True for state in states):
        return "in regime"
    if all(state is None for state in states):
        return "regime unknown"
    inside = sum(state is True for state in states)
    return "out of regime" if inside == 0 else f"{inside} of {len(states)} recipes in regime"


def regime_of(*cells: pd.DataFrame) -> bool | None:
    """The regime of a comparison that uses ``cells``: False when any is out, None when any is unknown, else True."""
    states = [cell_regime(cell)[0] for cell in cells]
    if any(s is False for s in states):
        return False
    if any(s is None for s in states):
        return None
    return True


def baselines_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (domain, preset, config_key): each baseline's mean over the stored seeds, and whether it gates."""
    if frame.empty or "baselines" not in frame:
        return pd.DataFrame(columns=["domain", "preset", "config_key", "baseline", "value", "gates", "seeds"])
    rows = []
    for (domain, preset, key), runs in frame.groupby(["domain", "preset", "config_key"], sort=True):
        per_seed = runs.drop_duplicates("seed")
        names = sorted({n for b in per_seed["baselines"] for n in b})
        gating = set(gate_names(domain, names))
        for name in names:
            values = [b[name] for b in per_seed["baselines"] if name in b]
            rows.append(dict(domain=domain, preset=preset, config_key=key, baseline=name,
                             value=float(np.mean(values)), gates=name in gating, seeds=len(values)))
    return pd.DataFrame(rows)
