"""The kinds of comparison a claim is checked with. Each is data (recipes, fields, limits, wording) with a
``check(auditor, runs)`` that makes its comparisons on a claim's runs:

* :class:`Beats` -- a recipe beats each rival within each config (each at its best LR);
* :class:`BeatsAcross` -- a recipe at some values of a field beats a rival at other values (4-bit vs 16-bit);
* :class:`LessLrSensitive`, :class:`LessLrSensitiveAcross` -- a flatter metric-vs-LR curve, between two recipes
  or, per recipe, between two groups of a field's values;
* :class:`FewerSpikes` -- fewer spikes of a telemetry series;
* :class:`ReachesTargetSooner` -- reaches the reference's final training loss in a fraction of its steps;
* :class:`AdvantageGrows` -- the advantage over a baseline grows from the lowest to the highest value of a field;
* :class:`Overhead` -- time per step within a factor of the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from benchmarks.analysis import telemetry
from benchmarks.analysis.frame import at_best_lr
from benchmarks.analysis.stats import bootstrap
from benchmarks.audit.verdicts import INCONCLUSIVE, Comparison, beats, decide

if TYPE_CHECKING:
    from benchmarks.audit.auditor import Auditor

Pick = Callable[[pd.DataFrame], pd.Series]


def _recipe_is(recipe: str) -> Pick:
    return lambda runs: runs["recipe"] == recipe


def _field_is(name: str, value) -> Pick:
    return lambda runs: runs["config"].map(lambda c: c.get(name) == value)


def _field_in(runs: pd.DataFrame, name: str, values: tuple) -> pd.DataFrame:
    return runs[runs["config"].map(lambda c: c.get(name) in values)]


def pairwise(auditor: "Auditor", runs: pd.DataFrame, winner: str, rivals, drop: tuple[str, ...] = (),
             pick_a: Pick | None = None, pick_b: Callable[[str], Pick] | None = None) -> list[Comparison]:
    """``winner`` beats each rival within each config (each at its best LR); ``pick_a`` / ``pick_b(rival)``
    select their runs (default: by recipe name)."""
    out = []
    for where, group in auditor.configs(runs, drop):
        a = at_best_lr(group[(pick_a or _recipe_is(winner))(group)])
        if a.empty:
            continue
        for rival in rivals:
            b = group[(pick_b or _recipe_is)(rival)(group)]
            if not b.empty:
                out.append(beats(a, at_best_lr(b), winner, rival, where))
    return out


@dataclass(frozen=True)
class Beats:
    """``winner`` beats each of ``rivals`` within each config."""

    winner: str
    rivals: tuple[str, ...]

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per (config, rival)."""
        return pairwise(auditor, runs, self.winner, self.rivals)


@dataclass(frozen=True)
class BeatsAcross:
    """``winner`` at each of ``winner_values`` of ``field`` beats ``rival`` at each of ``rival_values``, within
    each config apart from ``field``."""

    field: str
    winner: str
    winner_values: tuple
    rival: str
    rival_values: tuple

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per (winner value, rival value, config)."""
        out = []
        for ours in self.winner_values:
            for theirs in self.rival_values:
                both = _field_in(runs, self.field, (ours, theirs))
                is_ours, is_theirs = _field_is(self.field, ours), _field_is(self.field, theirs)
                out += pairwise(
                    auditor, both, f"{self.winner} ({ours})", (f"{self.rival} ({theirs})",), drop=(self.field,),
                    pick_a=lambda g, p=is_ours: (g["recipe"] == self.winner) & p(g),
                    pick_b=lambda _, p=is_theirs: lambda g: (g["recipe"] == self.rival) & p(g))
        return out


@dataclass(frozen=True)
class LessLrSensitiveAcross:
    """Per recipe and config, runs at ``a_values`` of ``field`` are less LR-sensitive than runs at ``b_values``
    (over the LRs both ran, at least two)."""

    field: str
    a_values: tuple
    b_values: tuple
    a_name: str
    b_name: str

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per (config, recipe)."""
        out = []
        for where, group in auditor.configs(runs, drop=(self.field,)):
            for recipe, by_recipe in group.groupby("recipe"):
                a, b = _field_in(by_recipe, self.field, self.a_values), _field_in(by_recipe, self.field, self.b_values)
                lrs = sorted(set(a["lr"]) & set(b["lr"]))
                if len(lrs) >= 2:
                    out.append(lr_sensitivity(a[a["lr"].isin(lrs)], b[b["lr"].isin(lrs)], self.a_name, self.b_name,
                                              f"{where} {recipe}"))
        return out


@dataclass(frozen=True)
class LessLrSensitive:
    """Within each config, recipe ``a`` is less LR-sensitive than recipe ``b`` (over the LRs both ran)."""

    a: str
    b: str

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per config."""
        out = []
        for where, group in auditor.configs(runs):
            a, b = group[group["recipe"] == self.a], group[group["recipe"] == self.b]
            lrs = sorted(set(a["lr"]) & set(b["lr"]))
            if len(lrs) >= 2:
                out.append(lr_sensitivity(a[a["lr"].isin(lrs)], b[b["lr"].isin(lrs)], self.a, self.b, where))
        return out


def lr_sensitivity(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str) -> Comparison:
    """``a`` is less LR-sensitive than ``b``: per-run degradation from the best LR, diverged runs count 1."""
    def degradation(runs):
        higher = bool(runs.iloc[0]["higher_is_better"])
        means = runs[runs["status"] == "finished"].groupby("lr")["metric_value"].mean()
        if means.empty:
            return np.ones(len(runs))
        best = means.max() if higher else means.min()
        values = []
        for _, run in runs.iterrows():
            if run["status"] != "finished" or not math.isfinite(run["metric_value"]):
                values.append(1.0)
            else:
                ratio = best / run["metric_value"] if higher else run["metric_value"] / best
                values.append(min(1.0, max(0.0, ratio - 1.0)))
        return np.asarray(values)

    def as_runs(values, runs):
        return runs.assign(metric_value=values, status="finished", higher_is_better=False)

    comparison = beats(as_runs(degradation(a), a), as_runs(degradation(b), b), name_a, name_b,
                       f"{where} (LR sensitivity over {a['lr'].nunique()} LRs)")
    comparison.numbers += (f"; diverged runs {name_a} {int((a['status'] == 'diverged').sum())}/{len(a)}, "
                           f"{name_b} {int((b['status'] == 'diverged').sum())}/{len(b)}")
    return comparison


@dataclass(frozen=True)
class FewerSpikes:
    """Within each config, ``a`` (at its best LR) has fewer spikes than ``b``: the runs frame's ``column``
    (a spike count, lower is better) replaces the headline metric."""

    a: str
    b: str
    column: str = "grad_norm_spikes"
    label: str = "gradient-norm spikes"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per config."""
        out = []
        for where, group in auditor.configs(runs):
            a = at_best_lr(group[group["recipe"] == self.a])
            b = at_best_lr(group[group["recipe"] == self.b])
            if a.empty or b.empty:
                continue
            a, b = self._as_counts(a), self._as_counts(b)
            if not a.empty and not b.empty:
                out.append(beats(a, b, self.a, self.b, f"{where} ({self.label})"))
        return out

    def _as_counts(self, runs: pd.DataFrame) -> pd.DataFrame:
        return runs.assign(metric_value=runs[self.column], status="finished",
                           higher_is_better=False).dropna(subset=["metric_value"])


@dataclass(frozen=True)
class ReachesTargetSooner:
    """``candidate`` reaches ``reference``'s smoothed final training loss in a fraction of ``reference``'s
    steps: reproduced when the CI of that fraction is below ``limit``. ``statement`` follows the candidate's
    name in the comparison's text; ``reference_name`` names the reference in its numbers."""

    candidate: str
    reference: str
    limit: float
    statement: str
    reference_name: str

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per config with finished runs of both."""
        out = []
        for where, group in auditor.configs(runs):
            reference = at_best_lr(group[group["recipe"] == self.reference])
            candidate = at_best_lr(group[group["recipe"] == self.candidate])
            reference = reference[reference["status"] == "finished"]
            candidate = candidate[candidate["status"] == "finished"]
            if reference.empty or candidate.empty:
                continue
            ids = list(reference["run_id"]) + list(candidate["run_id"])
            curves = auditor.store.curves_named("train", "loss", ids)
            smoothed = {i: (c.steps, telemetry.smooth(c.values, max(1, len(c.values) // 20))) for i, c in curves.items()}
            finals = [smoothed[i][1][-1] for i in reference["run_id"] if i in smoothed]
            if not finals:
                continue
            # The reference's length in steps is read off its curves (what it actually trained), not the config.
            target = float(np.mean(finals))
            total = float(max(smoothed[i][0][-1] + 1 for i in reference["run_id"] if i in smoothed))
            ratios = []
            for run_id in candidate["run_id"]:
                if run_id in smoothed:
                    reached = telemetry.steps_to_target(*smoothed[run_id], target)
                    ratios.append(1.0 if reached is None else (reached + 1) / total)
            mean, low, high = bootstrap([ratios], lambda x: x)
            verdict = decide(low, high, self.limit) if len(ratios) >= 2 else INCONCLUSIVE
            out.append(Comparison(
                f"{where}: {self.candidate} {self.statement}", verdict,
                f"target {target:.4g} ({self.reference_name}'s smoothed final loss, n={len(finals)}); steps ratio "
                f"{mean:.3g} [95% CI {low:.3g}, {high:.3g}] over n={len(ratios)} (1 = never reached)"))
        return out


@dataclass(frozen=True)
class AdvantageGrows:
    """Within each config apart from ``field``, ``baseline``'s metric minus ``candidate``'s (each at its best LR)
    grows from the lowest to the highest value of ``field`` run (lower metric is better). ``statement`` is the
    comparison's text, with ``{low}`` and ``{high}`` for the two values."""

    field: str
    candidate: str
    baseline: str
    statement: str

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per config with finished runs of both at two or more values."""
        out = []
        for where, group in auditor.configs(runs, drop=(self.field,)):
            by_value = {}
            for value, at in group.groupby(group["config"].map(lambda c: c.get(self.field))):
                baseline = at_best_lr(at[at["recipe"] == self.baseline])
                candidate = at_best_lr(at[at["recipe"] == self.candidate])
                values = [x.loc[x["status"] == "finished", "metric_value"].dropna().to_numpy()
                          for x in (baseline, candidate)]
                if all(len(v) for v in values):
                    by_value[value] = values
            if len(by_value) < 2:
                continue
            low_v, high_v = min(by_value), max(by_value)
            groups = [*by_value[high_v], *by_value[low_v]]
            growth, low, high = bootstrap(groups, lambda bh, ch, bl, cl: (bh - ch) - (bl - cl))
            out.append(Comparison(
                f"{where}: {self.statement.format(low=low_v, high=high_v)}", decide(-high, -low, 0.0),
                f"growth {growth:.4g} [95% CI {low:.4g}, {high:.4g}], n = {'/'.join(str(len(g)) for g in groups)}"))
        return out


@dataclass(frozen=True)
class Overhead:
    """Within each config, ``candidate``'s training time per step is within ``limit`` x ``reference``'s (finished
    runs, all LRs). ``statement`` is the comparison's text, with ``{margin}`` for ``limit - 1``."""

    candidate: str
    reference: str
    limit: float
    statement: str

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Comparison]:
        """One comparison per config with finished runs of both."""
        out = []
        for where, group in auditor.configs(runs):
            times = []
            for recipe in (self.candidate, self.reference):
                done = group[(group["recipe"] == recipe) & (group["status"] == "finished")]
                times.append([seconds_per_step(r) for _, r in done.iterrows()])
            if not all(times):
                continue
            ratio, low, high = bootstrap(times, lambda s, a: s / a)
            verdict = decide(low, high, self.limit) if min(map(len, times)) >= 2 else INCONCLUSIVE
            out.append(Comparison(
                f"{where}: {self.statement.format(margin=self.limit - 1)}", verdict,
                f"time ratio {ratio:.3g} [95% CI {low:.3g}, {high:.3g}], n = {len(times[0])}/{len(times[1])}"))
        return out


def seconds_per_step(run: pd.Series) -> float:
    """A run's training seconds (the domain's ``seconds`` metric, else its wall time) per unit of budget."""
    seconds = run["final_metrics"].get("seconds", run["wall_seconds"])
    return float(seconds) / max(1, run["budget"] or 1)
