"""The summary a report opens with: what the runs in a store say, per domain and condition, in one table.

For each (domain, preset, condition) — a condition is one point of the config grid the domain's runs vary over
(``precision=int4``, ``env=Hopper``, ``severity=2``) — the recipes are ranked by their mean metric over finished
seeds (a recipe run at several LRs at its best LR), and the table gives:

* the best recipe and its mean ± std (n);
* its margin over the runner-up, positive = better, with a paired 95% t interval over the seeds both ran
  (:func:`benchmarks.analysis.inference.compare`);
* the regime gate's verdict for the cell (whether training got anywhere; supplied by the caller, see
  :func:`run_summary`);
* a trust tag: ``n`` (seeds in the comparison), ``underpowered`` when n < :data:`inference.MIN_SEEDS`,
  ``no CI`` when n < 2, ``not separated`` when the interval contains 0, and the non-finished runs.

Pure: a runs frame (:func:`benchmarks.analysis.frame.runs_frame`) in, Markdown out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from benchmarks.analysis import inference
from benchmarks.analysis.frame import at_best_lr, varying_fields
from benchmarks.analysis.stats import summarize
from benchmarks.outputs.numbers import MISSING, interval, mean_pm, signed

RegimeVerdict = Callable[[pd.DataFrame], str]  # the runs of one cell -> a short verdict ("in regime", ...)


@dataclass(frozen=True)
class CellSummary:
    """The outcome of one (domain, preset, condition)."""

    domain: str
    preset: str
    condition: str
    metric: str
    higher_is_better: bool
    ranking: list[tuple[str, float, float, int]]  # (recipe label, mean, std, n finished), best first
    margin: inference.TestResult | None  # best − runner-up, positive = better (None: fewer than two recipes)
    not_finished: int
    regime: str

    @property
    def trust(self) -> str:
        """``n=3 · underpowered · not separated · 1 diverged/failed``-style tag."""
        if self.margin is None:
            n = self.ranking[0][3] if self.ranking else 0
            parts = [f"n={n}", "one recipe"]
        else:
            n = self.margin.n
            parts = [f"n={n}"]
            if n < 2 or not self.margin.testable:
                parts.append("no CI")
            elif n < inference.MIN_SEEDS:
                parts.append("underpowered")
            if self.margin.testable and self.margin.low <= 0 <= self.margin.high:
                parts.append("not separated")
        if self.not_finished:
            parts.append(f"{self.not_finished} diverged/failed")
        return " · ".join(parts)


def condition_text(config: dict, fields: list[str]) -> str:
    """``precision=int4, severity=2`` for the varying ``fields`` of ``config`` (``all`` when none vary)."""
    return ", ".join(f"{f}={config.get(f)}" for f in fields) or "all"


def per_seed(runs: pd.DataFrame) -> dict[int, float]:
    """seed -> metric of the finished runs among ``runs``."""
    done = runs[runs["status"] == "finished"]
    return {int(s): float(v) for s, v in zip(done["seed"], done["metric_value"]) if v is not None}


def summarize_cell(runs: pd.DataFrame, condition: str, regime: RegimeVerdict | None = None) -> CellSummary | None:
    """The summary of one cell's runs (every recipe and seed of one domain, preset and condition); None when no
    recipe finished a run."""
    first = runs.iloc[0]
    higher = bool(first["higher_is_better"])
    ranked = []
    seeds: dict[str, dict[int, float]] = {}
    for label, at in runs.groupby("label"):
        at = at_best_lr(at)
        values = per_seed(at)
        if not values:
            continue
        summary = summarize(list(values.values()))
        shown = label + (f" (lr={at.iloc[0]['lr']:g})" if runs.loc[runs["label"] == label, "lr"].nunique() > 1 else "")
        ranked.append((shown, summary.mean, summary.std, summary.n))
        seeds[shown] = values
    if not ranked:
        return None
    ranked.sort(key=lambda item: -item[1] if higher else item[1])
    margin = None
    if len(ranked) >= 2:
        best, runner_up = seeds[ranked[0][0]], seeds[ranked[1][0]]
        margin = inference.compare(best, runner_up) if higher else inference.compare(runner_up, best)
    verdict = regime(runs) if regime is not None else MISSING
    return CellSummary(first["domain"], first["preset"], condition, first["metric"], higher, ranked, margin,
                       int((runs["status"] != "finished").sum()), verdict)


def cells(frame: pd.DataFrame, regime: RegimeVerdict | None = None) -> list[CellSummary]:
    """Every (domain, preset, condition) of ``frame``, sorted; conditions are the points of the config fields
    that vary among a (domain, preset)'s runs."""
    found = []
    if frame.empty:
        return found
    for (domain, preset), runs in frame.groupby(["domain", "preset"], sort=True):
        fields = varying_fields(runs)
        keyed = runs.assign(condition=[condition_text(c, fields) for c in runs["config"]],
                            order=[json.dumps([c.get(f) for f in fields]) for c in runs["config"]])
        for _, at in sorted(keyed.groupby("condition"), key=lambda item: item[1]["order"].iloc[0]):
            cell = summarize_cell(at, at["condition"].iloc[0], regime)
            if cell is not None:
                found.append(cell)
    return found


def run_summary(frame: pd.DataFrame, regime: RegimeVerdict | None = None) -> str:
    """The Markdown section "Summary of these runs" for ``frame`` (the runs of this ``--out``).

    ``regime(cell_runs) -> str`` gives the regime gate's verdict of a cell (the runs of one domain, preset and
    condition, every recipe and seed); without it the column reads "—".
    """
    if frame.empty:
        return "## Summary of these runs\n\nNo runs in the store yet.\n"
    counts = frame["status"].value_counts()
    lines = ["## Summary of these runs", "",
             f"{len(frame)} runs: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("finished", "diverged", "failed"))
             + ". Per domain and condition: the best recipe (mean over finished seeds, best LR where swept), its "
               "margin over the runner-up (positive = better; paired 95% t interval over shared seeds), the "
               f"regime gate's verdict and how far to trust it (underpowered: fewer than {inference.MIN_SEEDS} "
               "seeds; not separated: the interval contains 0).", "",
             "| domain | condition | best recipe | metric | runner-up | margin over runner-up [95% CI] | regime "
             "| trust |",
             "|---|---|---|---|---|---|---|---|"]
    for cell in cells(frame, regime):
        best = cell.ranking[0]
        runner = cell.ranking[1][0] if len(cell.ranking) > 1 else MISSING
        margin = MISSING if cell.margin is None else f"{signed(cell.margin.estimate)} " \
                                                     f"{interval(cell.margin.low, cell.margin.high)}"
        direction = "↑" if cell.higher_is_better else "↓"
        metric = f"{cell.metric} {direction} {mean_pm(best[1], best[2])}"
        # REGIME: the verdict column comes from `regime` (benchmarks.analysis.regime's per-cell function).
        lines.append(f"| {cell.domain} ({cell.preset}) | {cell.condition} | **{best[0]}** | {metric} | {runner} "
                     f"| {margin} | {cell.regime} | {cell.trust} |")
    return "\n".join(lines) + "\n"
