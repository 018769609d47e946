"""The kinds of comparison a claim is checked with. Each is data (recipes, fields, limits, the part it covers)
with a ``check(auditor, runs)`` that makes tested comparisons (:class:`benchmarks.audit.grading.Check`):

* :class:`Beats` -- a recipe beats each rival within each config (each at its best LR);
* :class:`BeatsAcross` -- a recipe at some values of a field beats a rival at other values (4-bit vs 16-bit);
* :class:`LessLrSensitive`, :class:`LessLrSensitiveAcross` -- a flatter metric-vs-LR curve, between two recipes
  or, per recipe, between two groups of a field's values (paired seed bootstrap, best LR re-picked);
* :class:`FewerSpikes` -- fewer gradient-norm spikes, the window scaled to the run;
* :class:`ReachesTargetSooner` -- reaches the reference's final training loss in a fraction of its steps,
  each seed against the reference run of the same seed (so the target's own spread is carried);
* :class:`AdvantageGrows` -- the advantage over a baseline grows from the lowest to the highest value of a field;
* :class:`Overhead` -- the interleaved optimizer-step benchmark's time ratio and state bytes.

Every test is on a quantity whose **negative** values support the claim; seed-matched arms are analysed as
pairs (:func:`benchmarks.analysis.inference.compare`). Each arm is a recipe at one config, at its best LR
(:func:`benchmarks.analysis.frame.at_best_lr`: fewest non-finished seeds, then the best mean over seeds).
Diverged runs are left out of a t-test and counted in the comparison's numbers; an arm whose runs all diverged
gives an untestable comparison (its cell is out of regime anyway). Part names are templates filled from the
config, with the paper's names for precisions (:data:`LABELS`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmarks.analysis import telemetry
from benchmarks.analysis.frame import at_best_lr
from benchmarks.analysis.inference import ALPHA, MIN_SEEDS, TestResult, compare, paired_t
from benchmarks.analysis.regime import cell_regime, regime_of
from benchmarks.audit.grading import Check
from benchmarks.audit.verdicts import summary_text

if TYPE_CHECKING:
    from benchmarks.audit.auditor import Auditor

Pick = Callable[[pd.DataFrame], pd.Series]

# The paper's names of our precisions (the LM configs' ``quant`` values, and the old ``precision`` ones): both FP4
# E1M2 implementations are its "FP4"; no quantization ("none") is its 16-bit, where FP32 on the CPU presets stands
# for the paper's BF16.
LABELS = {"int2": "INT2", "int3": "INT3", "int4": "INT4", "int8": "INT8", "fp4_e1m2": "FP4", "fp4_e1m2_ref": "FP4",
          "mxfp4": "MXFP4", "nvfp4": "NVFP4", "bf16": "16-bit", "fp32": "16-bit", "none": "16-bit"}
BITS = {"int2": "2-bit", "int3": "3-bit", "int4": "4-bit", "int8": "8-bit", "fp4_e1m2": "4-bit",
        "fp4_e1m2_ref": "4-bit", "mxfp4": "4-bit", "nvfp4": "4-bit", "bf16": "16-bit", "fp32": "16-bit",
        "none": "16-bit"}
LR_BOOTSTRAP_RESAMPLES = 1000


class _Blank(dict):
    def __missing__(self, key):
        return "?"


def part_name(template: str, config: Mapping, **names) -> str:
    """``template`` filled with the config's values (precisions by their paper names; ``{bits}`` the bit width
    of the precision) and ``names``."""
    values = _Blank({k: LABELS.get(str(v), str(v)) for k, v in config.items()})
    field = "quant" if "quant" in config else "precision"
    if field in config:
        values["bits"] = BITS.get(str(config[field]), str(config[field]))
    values.update(names)
    return template.format_map(values)


def seed_values(runs: pd.DataFrame, column: str = "metric_value") -> dict[int, float]:
    """seed -> value of the finished runs with a finite ``column``."""
    done = runs[(runs["status"] == "finished")]
    return {int(s): float(v) for s, v in zip(done["seed"], done[column]) if v is not None and math.isfinite(v)}


def _no_test(n_a: int, n_b: int, why: str) -> TestResult:
    return TestResult(math.nan, math.nan, math.nan, math.nan, n_a, n_b, 0, why, math.nan)


def _regime_note(*cells: tuple[str, pd.DataFrame]) -> str:
    notes = []
    for name, cell in cells:
        state, text = cell_regime(cell)
        if state is not True:
            notes.append(f"{name} {text}")
    return f"; {'; '.join(notes)}" if notes else ""


def beats_check(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str, part: str,
                paper_relative: float | None = None, column: str = "metric_value",
                higher_is_better: bool | None = None) -> Check:
    """"``a`` has a better ``column`` than ``b``": the test of ``a - b`` (lower is better) or ``b - a``
    (higher), seed-paired when they share seeds. ``paper_relative`` (the paper's effect over the rival's value,
    negative = supports) scales to this metric by ``|mean(b)|`` for the power estimate."""
    higher = bool(a.iloc[0]["higher_is_better"]) if higher_is_better is None else higher_is_better
    va, vb = seed_values(a, column), seed_values(b, column)
    div_a, div_b = int((a["status"] == "diverged").sum()), int((b["status"] == "diverged").sum())
    numbers = (f"{name_a} {summary_text(list(va.values()))}{f', {div_a} div' if div_a else ''}; "
               f"{name_b} {summary_text(list(vb.values()))}{f', {div_b} div' if div_b else ''}")
    if va and vb:
        result = compare(vb, va) if higher else compare(va, vb)
        numbers += f"; difference{' (rival - ours)' if higher else ''}"
    else:
        result = _no_test(len(a), len(b), "no test: an arm has no finished run")
    effect = None
    if paper_relative is not None and vb:
        effect = paper_relative * abs(float(np.mean(list(vb.values()))))
    numbers += _regime_note((name_a, a), (name_b, b))
    return Check(f"{where}: {name_a} beats {name_b}", part, result, regime_of(a, b), effect, numbers)


def _recipe_is(recipe: str) -> Pick:
    return lambda runs: runs["recipe"] == recipe


def _field_in(runs: pd.DataFrame, name: str, values: tuple) -> pd.DataFrame:
    if runs.empty:
        return runs
    return runs[runs["config"].map(lambda c: c.get(name) in values).astype(bool)]


@dataclass(frozen=True)
class Beats:
    """``winner`` beats each of ``rivals`` within each config. ``part`` names the part each comparison covers
    (a template with ``{winner}``, ``{rival}`` and the config's fields); ``paper`` maps parts to the paper's
    relative effects."""

    winner: str
    rivals: tuple[str, ...]
    part: str = "{rival}"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per (config, rival) that ran."""
        out = []
        for where, group in auditor.configs(runs):
            a = at_best_lr(group[group["recipe"] == self.winner])
            if a.empty:
                continue
            for rival in self.rivals:
                b = group[group["recipe"] == rival]
                if b.empty:
                    continue
                part = part_name(self.part, a.iloc[0]["config"], winner=self.winner, rival=rival)
                out.append(beats_check(a, at_best_lr(b), self.winner, rival, where, part,
                                       auditor.paper_effect(part)))
        return out


@dataclass(frozen=True)
class BeatsAcross:
    """``winner`` at each of ``winner_values`` of ``field`` beats ``rival`` at each of ``rival_values``, within
    each config apart from ``field``; ``part`` is filled from the winner's config (``{ours}``/``{theirs}``: the
    two values by their paper names)."""

    field: str
    winner: str
    winner_values: tuple
    rival: str
    rival_values: tuple
    part: str = "{ours} vs {theirs}"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per (winner value, rival value, config)."""
        out = []
        for where, group in auditor.configs(runs, drop=(self.field,)):
            for ours in self.winner_values:
                a = at_best_lr(_field_in(group[group["recipe"] == self.winner], self.field, (ours,)))
                if a.empty:
                    continue
                for theirs in self.rival_values:
                    b = at_best_lr(_field_in(group[group["recipe"] == self.rival], self.field, (theirs,)))
                    if b.empty:
                        continue
                    part = part_name(self.part, a.iloc[0]["config"], ours=LABELS.get(ours, ours),
                                     theirs=LABELS.get(theirs, theirs))
                    out.append(beats_check(a, b, f"{self.winner} ({ours})", f"{self.rival} ({theirs})", where, part,
                                           auditor.paper_effect(part)))
        return out


# --- LR sensitivity ---------------------------------------------------------------------------------------

def lr_matrix(runs: pd.DataFrame, lrs: list[float], seeds: list[int]) -> np.ndarray:
    """(LR x seed) matrix of the finished metric; NaN for a diverged/failed/missing run."""
    matrix = np.full((len(lrs), len(seeds)), np.nan)
    index_lr, index_seed = {lr: i for i, lr in enumerate(lrs)}, {s: j for j, s in enumerate(seeds)}
    for run in runs.itertuples():
        if run.lr in index_lr and run.seed in index_seed and run.status == "finished" \
                and run.metric_value is not None and math.isfinite(run.metric_value):
            matrix[index_lr[run.lr], index_seed[run.seed]] = run.metric_value
    return matrix


def sensitivity(matrix: np.ndarray, higher_is_better: bool) -> np.ndarray | float:
    """Mean over the (LR, seed) runs of min(1, metric / best - 1) (``best / metric - 1`` when higher is
    better), a non-finished run (NaN) counting 1; ``best`` is the best LR's mean over the seeds (re-picked on
    every call, so on every bootstrap resample). ``matrix`` is (LR x seed), or (LR x resample x seed) for one
    value per resample."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an LR whose every seed diverged has no mean
        means = np.nanmean(matrix, axis=-1)  # per LR (and resample); NaN when every seed diverged
        best = np.nanmax(means, axis=0) if higher_is_better else np.nanmin(means, axis=0)
        best = np.expand_dims(best, (0, -1))
        ratio = best / matrix if higher_is_better else matrix / best
    degradation = np.where(np.isnan(ratio), 1.0, np.clip(ratio - 1.0, 0.0, 1.0))
    value = degradation.mean(axis=(0, -1))
    return float(value) if np.ndim(value) == 0 else value


def sensitivity_test(a: pd.DataFrame, b: pd.DataFrame, lrs: list[float], higher: bool,
                     resamples: int = LR_BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[TestResult, float, float]:
    """(test of sensitivity(a) - sensitivity(b), sensitivity(a), sensitivity(b)) over the seeds both ran.

    Paired seed bootstrap: the same seeds are drawn (with replacement) for every LR and both arms, and the
    best LR is re-picked in every resample. Its standard error, times sqrt(n / (n - 1)) (the bootstrap's
    variance of a mean is (n - 1)/n of the unbiased one), is referred to Student's t with n - 1 degrees of
    freedom: for a mean this is exactly the paired t-test, and the null simulation in the tests checks its
    calibration for this statistic.
    """
    seeds = sorted(set(a["seed"]) & set(b["seed"]))
    n = len(seeds)
    ma, mb = lr_matrix(a, lrs, seeds), lr_matrix(b, lrs, seeds)
    sa, sb = sensitivity(ma, higher), sensitivity(mb, higher)
    estimate = sa - sb
    if n < 2:
        return _no_test(n, n, "no test: fewer than 2 shared seeds"), sa, sb
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    stats = sensitivity(ma[:, draws], higher) - sensitivity(mb[:, draws], higher)
    se = float(stats.std(ddof=1)) * math.sqrt(n / (n - 1))
    method = f"paired seed bootstrap ({resamples} resamples, best LR re-picked) + t({n - 1})"
    if se == 0:
        p = 1.0 if estimate == 0 else 0.0
        return TestResult(estimate, estimate, estimate, p, n, n, n, method, 0.0), sa, sb
    p = float(2 * sps.t.sf(abs(estimate / se), n - 1))
    half = float(sps.t.ppf(1 - ALPHA / 2, n - 1)) * se
    return TestResult(estimate, estimate - half, estimate + half, p, n, n, n, method, se * math.sqrt(n)), sa, sb


def lr_sensitivity_check(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str,
                         part: str) -> Check:
    """``a`` is less LR-sensitive than ``b`` (:func:`sensitivity_test`), on whole curves only.

    A curve with a hole (an LR that one arm ran and the other did not, or a shared seed missing at an LR) would
    be judged on a part of the grid, and a missing run would count as a divergence; such a comparison does not
    run (its part then reads "not run") and its numbers name the holes.
    """
    what = f"{where} (LR sensitivity): {name_a} is less LR-sensitive than {name_b}"
    holes = _curve_holes({name_a: a, name_b: b})
    if holes:
        return Check(what, part, _no_test(0, 0, "no test: partial LR curve"), in_regime=None,
                     numbers=f"partial LR curve, judged when complete; missing: {'; '.join(holes)}")
    lrs = sorted(set(a["lr"]))
    result, sa, sb = sensitivity_test(a, b, lrs, bool(a.iloc[0]["higher_is_better"]))
    numbers = (f"sensitivity {name_a} {sa:.3g}, {name_b} {sb:.3g} over {len(lrs)} LRs and {result.n} seeds; "
               f"diverged runs {name_a} {int((a['status'] == 'diverged').sum())}/{len(a)}, "
               f"{name_b} {int((b['status'] == 'diverged').sum())}/{len(b)}")
    # In regime when each arm's best LR is: the curve's flat part is what the paper compares.
    cells_a, cells_b = at_best_lr(a), at_best_lr(b)
    numbers += _regime_note((f"{name_a} at its best LR", cells_a), (f"{name_b} at its best LR", cells_b))
    return Check(what, part, result, regime_of(cells_a, cells_b), None, numbers)


def _curve_holes(arms: dict[str, pd.DataFrame]) -> list[str]:
    """Where the arms' (LR x shared seed) grids have no stored run, as "arm lr=...: seed ..." texts."""
    lrs = sorted(set().union(*(set(arm["lr"]) for arm in arms.values())))
    seeds = sorted(set.intersection(*(set(arm["seed"]) for arm in arms.values())))
    holes = []
    for name, arm in arms.items():
        stored = set(zip(arm["lr"], arm["seed"]))
        for lr in lrs:
            missing = [s for s in seeds if (lr, s) not in stored]
            if missing:
                holes.append(f"{name} lr={lr:g}: seed {', '.join(map(str, missing))}")
    return holes


@dataclass(frozen=True)
class LessLrSensitiveAcross:
    """Per recipe (of ``recipes``) and config, runs at ``a_values`` of ``field`` are less LR-sensitive than
    runs at each one of ``b_values`` (whole curves of at least two shared LRs, :func:`lr_sensitivity_check`). Part:
    ``{recipe} {value}``."""

    field: str
    a_values: tuple
    b_values: tuple
    recipes: tuple[str, ...]
    part: str = "{recipe} {value}"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per (config, recipe, value of ``b_values``)."""
        out = []
        for where, group in auditor.configs(runs, drop=(self.field,)):
            for recipe in self.recipes:
                by_recipe = group[group["recipe"] == recipe]
                a = _field_in(by_recipe, self.field, self.a_values)
                for value in self.b_values:
                    b = _field_in(by_recipe, self.field, (value,))
                    if len(set(a["lr"]) & set(b["lr"])) >= 2:
                        label = LABELS.get(value, value)
                        out.append(lr_sensitivity_check(a, b, f"{recipe} 16-bit", f"{recipe} {label}", where,
                                                        self.part.format(recipe=recipe, value=label)))
        return out


@dataclass(frozen=True)
class LessLrSensitive:
    """Within each config, recipe ``a`` is less LR-sensitive than recipe ``b`` (on whole curves,
    :func:`lr_sensitivity_check`)."""

    a: str
    b: str
    part: str = "{precision}"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per config."""
        out = []
        for where, group in auditor.configs(runs):
            a, b = group[group["recipe"] == self.a], group[group["recipe"] == self.b]
            if len(set(a["lr"]) & set(b["lr"])) >= 2:
                out.append(lr_sensitivity_check(a, b, self.a, self.b, where,
                                                part_name(self.part, a.iloc[0]["config"])))
        return out


# --- spikes -------------------------------------------------------------------------------------------------

def spike_window(steps: int) -> int:
    """The spike detector's window for a run of ``steps`` logged steps: the paper's K = 100 is a small fraction
    of its runs (tens of thousands of steps); here K = steps / 20, at least 10 and at most 100, so 95% of every
    run is testable (a 200-step run gets K = 10, a run of 2,000 steps or more the paper's 100)."""
    return int(max(10, min(telemetry.SPIKE_WINDOW, steps // 20)))


@dataclass(frozen=True)
class FewerSpikes:
    """Within each config, ``a`` (at its best LR) has fewer gradient-norm spikes than ``b``, counted on the
    ``series`` training curve with a window scaled to the run (:func:`spike_window`)."""

    a: str
    b: str
    series: str = "grad_norm_before"
    part: str = "{bits}"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per config."""
        out = []
        for where, group in auditor.configs(runs):
            a = at_best_lr(group[group["recipe"] == self.a])
            b = at_best_lr(group[group["recipe"] == self.b])
            if a.empty or b.empty:
                continue
            curves = auditor.store.curves_named("train", self.series, list(a["run_id"]) + list(b["run_id"]))
            if not curves:
                continue
            windows = {i: spike_window(len(c.values)) for i, c in curves.items()}
            counts = {i: float(telemetry.spike_count(c.values, windows[i])) for i, c in curves.items()}

            def with_counts(runs):
                return runs.assign(spikes=[counts.get(i, math.nan) for i in runs["run_id"]])

            part = part_name(self.part, a.iloc[0]["config"])
            check = beats_check(with_counts(a), with_counts(b), self.a, self.b, f"{where} (gradient-norm spikes)",
                                part, auditor.paper_effect(part), column="spikes", higher_is_better=False)
            check.numbers += f"; spike window K = {'/'.join(map(str, sorted(set(windows.values()))))} steps"
            out.append(check)
        return out


# --- steps to a target ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReachesTargetSooner:
    """``candidate`` reaches ``reference``'s smoothed final training loss in less than ``limit`` of
    ``reference``'s steps. Per seed: the candidate run of seed s against the reference run of seed s (its own
    final loss and length), so the reference target's seed-to-seed spread enters the test; the quantity tested
    is ``steps ratio - limit`` (1 when never reached, or when the candidate diverged)."""

    candidate: str
    reference: str
    limit: float
    statement: str
    part: str = "{bits}"
    paper_ratio: float | None = 0.5

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per config with runs of both on shared seeds."""
        out = []
        for where, group in auditor.configs(runs):
            reference = at_best_lr(group[group["recipe"] == self.reference])
            candidate = at_best_lr(group[group["recipe"] == self.candidate])
            reference = reference[reference["status"] == "finished"]
            if reference.empty or candidate.empty:
                continue
            curves = auditor.store.curves_named("train", "loss", list(reference["run_id"]) + list(candidate["run_id"]))
            smoothed = {i: (c.steps, telemetry.smooth(c.values, max(1, len(c.values) // 20)))
                        for i, c in curves.items()}
            ref_by_seed = {int(r.seed): r.run_id for r in reference.itertuples() if r.run_id in smoothed}
            ratios, targets = {}, []
            for run in candidate.itertuples():
                if int(run.seed) not in ref_by_seed:
                    continue
                steps, values = smoothed[ref_by_seed[int(run.seed)]]
                target, total = float(values[-1]), float(steps[-1] + 1)
                targets.append(target)
                reached = None
                if run.status == "finished" and run.run_id in smoothed:
                    reached = telemetry.steps_to_target(*smoothed[run.run_id], target)
                ratios[int(run.seed)] = 1.0 if reached is None else (reached + 1) / total
            if not ratios:
                continue
            values = [r - self.limit for r in ratios.values()]
            result = paired_t(values, [0.0] * len(values)) if len(values) >= 2 else _no_test(
                len(values), len(values), "no test: fewer than 2 shared seeds")
            part = part_name(self.part, candidate.iloc[0]["config"])
            numbers = (f"steps ratio {summary_text(list(ratios.values()))} (1 = never reached); "
                       f"{self.reference}'s smoothed final loss per seed {summary_text(targets)}; tested: ratio - "
                       f"{self.limit}" + _regime_note((self.candidate, candidate), (self.reference, reference)))
            effect = None if self.paper_ratio is None else self.paper_ratio - self.limit
            out.append(Check(f"{where}: {self.candidate} {self.statement}", part, result,
                             regime_of(candidate, reference), effect, numbers))
        return out


# --- an advantage that grows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdvantageGrows:
    """Within each config apart from ``field``, ``baseline``'s metric minus ``candidate``'s (each at its best LR,
    per seed) grows from the lowest to the highest value of ``field`` run (lower metric is better): the test
    is of ``advantage(low) - advantage(high)``, seed-paired when the seeds match."""

    field: str
    candidate: str
    baseline: str
    statement: str
    part: str = "advantage grows"

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """One comparison per config with finished runs of both at two or more values."""
        out = []
        for where, group in auditor.configs(runs, drop=(self.field,)):
            by_value = {}
            for value, at in group.groupby(group["config"].map(lambda c: c.get(self.field))):
                base = at_best_lr(at[at["recipe"] == self.baseline])
                cand = at_best_lr(at[at["recipe"] == self.candidate])
                vb, vc = seed_values(base), seed_values(cand)
                advantage = {s: vb[s] - vc[s] for s in set(vb) & set(vc)}
                if len(advantage) >= 1:
                    by_value[value] = (advantage, base, cand)
            if len(by_value) < 2:
                continue
            low_v, high_v = min(by_value), max(by_value)
            (adv_low, *cells_low), (adv_high, *cells_high) = by_value[low_v], by_value[high_v]
            result = compare(adv_low, adv_high)
            numbers = (f"{self.baseline} - {self.candidate} at {self.field}={low_v}: "
                       f"{summary_text(list(adv_low.values()))}; at {self.field}={high_v}: "
                       f"{summary_text(list(adv_high.values()))}; tested: advantage({low_v}) - advantage({high_v})")
            cells = [*cells_low, *cells_high]
            names = [f"{r} at {self.field}={v}" for v in (low_v, high_v) for r in (self.baseline, self.candidate)]
            numbers += _regime_note(*zip(names, cells))
            out.append(Check(f"{where}: {self.statement.format(low=low_v, high=high_v)}", self.part, result,
                             regime_of(*cells), None, numbers))
        return out


# --- overhead, from the interleaved optimizer-step benchmark ------------------------------------------------

@dataclass(frozen=True)
class Overhead:
    """From ``benchmarks/perf/optimizer_step.py --json`` (``auditor.perf``; never from run wall times):
    ``candidate``'s optimizer step takes less than ``time_limit`` x the baseline's, torch's AdamW(fused=True)
    (the benchmark's first AdamW row; paired by interleaved
    round: the ratio of the two steps of each round, minus the limit, t-tested), and its optimizer state holds
    at most ``bytes_limit`` bytes per parameter tensor above AdamW's (an exact count: no sampling error)."""

    candidate: str
    time_limit: float
    bytes_limit: float

    def check(self, auditor: "Auditor", runs: pd.DataFrame) -> list[Check]:
        """Two comparisons ("step time", "optimizer memory") when the benchmark's JSON is there, else none."""
        perf = auditor.perf
        if not perf:
            return []
        records = {r["optimizer"]: r for r in perf.get("results", [])}
        base_name = next((name for name in records if name.startswith("AdamW")), None)
        base = records.get(base_name) if base_name else None
        mine = records.get(self.candidate)
        if base is None or mine is None:
            return []
        where = f"optimizer step on {perf.get('n_params', 0) / 1e6:.1f}M parameters ({perf.get('n_tensors')} tensors)"
        rounds = min(len(base["times_s"]), len(mine["times_s"]))
        ratios = [m / b for m, b in zip(mine["times_s"][:rounds], base["times_s"][:rounds]) if b > 0]
        values = [r - self.time_limit for r in ratios]
        timing = paired_t(values, [0.0] * len(values))
        time_check = Check(f"{where}: {self.candidate}'s step within {self.time_limit}x {base_name}'s",
                           "step time", timing, True, None,
                           f"per-round step-time ratio {summary_text(ratios)} over {rounds} interleaved rounds "
                           f"(median {mine.get('ratio_to_adamw_fused', mine.get('ratio_to_adamw', math.nan)):.3g}); tested: ratio - {self.time_limit}; "
                           f"machine {perf.get('machine', {}).get('cpu', '?')}")
        extra = float(mine["state_bytes_per_tensor_above_adamw"]) - self.bytes_limit
        exact = TestResult(extra, extra, extra, 0.0 if extra != 0 else 1.0, MIN_SEEDS, MIN_SEEDS, MIN_SEEDS,
                           "exact count (no sampling error)", 0.0)
        memory_check = Check(f"{where}: {self.candidate}'s state within {self.bytes_limit:g} B/tensor of AdamW's",
                             "optimizer memory", exact, True, None,
                             f"state {mine['state_bytes'] / 2**20:.1f} MiB vs {base['state_bytes'] / 2**20:.1f} MiB, "
                             f"{mine['state_bytes_per_tensor_above_adamw']:+.0f} B/tensor")
        return [time_check, memory_check]

