"""The claims audit (SPEC §4): each paper claim C1–C14 checked against the runs in the store.

Rules, the same for every claim:

* Only runs of the domain the claim is about are used (LLaMA for C1–C10 and C14, OLMoE C11, MuJoCo C12,
  weather C13), and only each recipe's default hyper-parameters (``variant == ""``); studies do not matter.
* A comparison is made within one config (same preset, size, precision, ...), except where the claim compares
  across a field (C1, C3: precision), and each recipe is taken **at its best LR** among those run there: the LR
  with the fewest diverged seeds, then the best mean metric.
* "A beats B": the difference of means of the finished runs' metric, with a 95% percentile-bootstrap CI
  (:func:`benchmarks.stats.bootstrap`). CI entirely on A's side -> ``reproduced``; entirely on B's side ->
  ``not reproduced``; otherwise, or with fewer than 2 finished seeds on a side -> ``inconclusive``. A recipe
  whose runs all diverged loses to one that finished.
* A claim made of several comparisons is ``reproduced`` when all are, ``not reproduced`` when all are,
  ``inconclusive`` otherwise (mixed or undecided); ``not run`` when the store holds none of the runs it needs.

Each result lists every comparison with its numbers, n and CI, so a reader can judge the scale it rests on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from benchmarks import telemetry
from benchmarks.frame import at_best_lr, varying_fields
from benchmarks.stats import bootstrap, summarize
from benchmarks.store import Store

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = "reproduced", "not reproduced", "inconclusive", "not run"
FOUR_BIT = ("int4", "fp4_e1m2", "fp4_e1m2_ref", "mxfp4", "nvfp4")
PAPER_4BIT = ("int4", "fp4_e1m2", "fp4_e1m2_ref")
SIXTEEN_BIT = ("fp32", "bf16")
STEPS_RATIO_LIMIT = 0.75  # C4: "about half the steps" is reproduced when the CI of the ratio is below this
OVERHEAD_LIMIT = 1.05  # C14: "negligible overhead" is reproduced when the CI of the time ratio is below this


@dataclass
class Comparison:
    """One checked statement with its numbers."""

    what: str
    verdict: str
    numbers: str


@dataclass
class ClaimResult:
    """The audit of one claim."""

    id: str
    claim: str
    verdict: str = NOT_RUN
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""


def combine(verdicts: list[str]) -> str:
    """One verdict from several comparisons (see the module docstring)."""
    if not verdicts:
        return NOT_RUN
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def decide(low: float, high: float, favourable_below: float) -> str:
    """Verdict from a CI [low, high]: entirely below ``favourable_below`` reproduces, entirely above refutes."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if high < favourable_below:
        return REPRODUCED
    if low > favourable_below:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _fmt(values) -> str:
    s = summarize(values)
    if s.n == 0:
        return "no finished run"
    spread = "" if math.isnan(s.std) else f" ± {s.std:.3g}"
    return f"{s.mean:.4g}{spread} (n={s.n})"


def beats(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str) -> Comparison:
    """Whether runs ``a`` have a better headline metric than runs ``b`` (module rules)."""
    higher = bool(a.iloc[0]["higher_is_better"])
    va = a.loc[a["status"] == "finished", "metric_value"].dropna().to_numpy()
    vb = b.loc[b["status"] == "finished", "metric_value"].dropna().to_numpy()
    div_a, div_b = int((a["status"] == "diverged").sum()), int((b["status"] == "diverged").sum())
    what = f"{where}: {name_a} beats {name_b}"
    numbers = f"{name_a} {_fmt(va)}{f', {div_a} div' if div_a else ''}; {name_b} {_fmt(vb)}{f', {div_b} div' if div_b else ''}"
    if len(va) == 0 or len(vb) == 0:
        if len(va) and div_b:
            return Comparison(what, REPRODUCED, numbers + f"; every {name_b} run diverged")
        if len(vb) and div_a:
            return Comparison(what, NOT_REPRODUCED, numbers + f"; every {name_a} run diverged")
        return Comparison(what, INCONCLUSIVE, numbers)
    sign = -1.0 if higher else 1.0  # express "better" as a negative difference
    diff, low, high = bootstrap([va, vb], lambda x, y: sign * (x - y))
    if math.isnan(low):
        return Comparison(what, INCONCLUSIVE, numbers + "; too few seeds for a CI")
    shown = sorted((sign * low, sign * high))
    numbers += f"; difference {sign * diff:.4g} [95% CI {shown[0]:.4g}, {shown[1]:.4g}]"
    return Comparison(what, decide(low, high, 0.0), numbers)


class Audit:
    """Checks the claims against a runs frame (from :func:`benchmarks.frame.runs_frame`) and the store."""

    def __init__(self, frame: pd.DataFrame, store: Store):
        self.frame = frame[frame["variant"] == ""] if not frame.empty else frame
        self.store = store

    # --- selecting runs ----------------------------------------------------------------------------------

    def runs(self, domain: str, recipes=None, **fields) -> pd.DataFrame:
        """Runs of ``domain`` (default hyper-parameters) whose recipe and config fields are in the given sets."""
        frame = self.frame
        if frame.empty:
            return frame
        keep = frame["domain"] == domain
        if recipes is not None:
            keep &= frame["recipe"].isin(recipes)
        for name, allowed in fields.items():
            keep &= frame["config"].map(lambda c: c.get(name) in allowed)
        return frame[keep]

    def configs(self, runs: pd.DataFrame, drop: tuple[str, ...] = ()) -> Iterator[tuple[str, pd.DataFrame]]:
        """(description, runs) per distinct (preset, config without ``drop``), described by its varying fields."""
        if runs.empty:
            return
        domain_runs = self.frame[self.frame["domain"] == runs.iloc[0]["domain"]]
        varying = [f for f in _varying(domain_runs) if f not in drop]
        keys = runs["config"].map(lambda c: json.dumps({k: v for k, v in c.items() if k not in drop}, sort_keys=True))
        for _, group in runs.groupby([runs["preset"], keys], sort=True):
            config = group.iloc[0]["config"]
            described = ", ".join(f"{f}={config.get(f)}" for f in varying)
            yield f"{group.iloc[0]['preset']}" + (f" {described}" if described else ""), group

    def pairwise(self, runs: pd.DataFrame, winner: str, rivals, drop: tuple[str, ...] = (),
                 pick_a: Callable = None, pick_b: Callable = None) -> list[Comparison]:
        """``winner`` beats each rival within each config (each at its best LR)."""
        out = []
        for where, group in self.configs(runs, drop):
            a = at_best_lr(group[(pick_a or (lambda g: g["recipe"] == winner))(group)])
            if a.empty:
                continue
            for rival in rivals:
                b = group[(pick_b or (lambda g, r=rival: g["recipe"] == r))(group)]
                if not b.empty:
                    out.append(beats(a, at_best_lr(b), winner, rival, where))
        return out

    # --- the claims --------------------------------------------------------------------------------------

    def audit(self) -> list[ClaimResult]:
        """Every claim C1–C14, in order."""
        return [self.c1(), self.c2(), self.c3(), self.c4(), self.c5(), self.c6(), self.c7(), self.c8(), self.c9(),
                self.c10(), self.c11(), self.c12(), self.c13(), self.c14()]

    def _result(self, id_: str, claim: str, comparisons: list[Comparison], note: str = "") -> ClaimResult:
        return ClaimResult(id_, claim, combine([c.verdict for c in comparisons]), comparisons, note)

    def c1(self) -> ClaimResult:
        comparisons = []
        runs = self.runs("llama", precision=FOUR_BIT + SIXTEEN_BIT)
        for where, group in self.configs(runs, drop=("precision",)):
            for recipe, by_recipe in group.groupby("recipe"):
                low = by_recipe[by_recipe["config"].map(lambda c: c.get("precision") in SIXTEEN_BIT)]
                high = by_recipe[by_recipe["config"].map(lambda c: c.get("precision") in FOUR_BIT)]
                lrs = sorted(set(low["lr"]) & set(high["lr"]))
                if len(lrs) < 2:
                    continue
                low, high = low[low["lr"].isin(lrs)], high[high["lr"].isin(lrs)]
                comparisons.append(_sensitivity(low, high, "16-bit", "4-bit", f"{where} {recipe}"))
        return self._result("C1", "4-bit training is more LR-sensitive than 16-bit; it diverges at larger LRs "
                            "(Fig. 2)", comparisons,
                            "LR sensitivity = mean over the shared LRs of min(1, metric / best metric - 1), a "
                            "diverged run counting 1; '16-bit beats 4-bit' means 16-bit is less sensitive.")

    def c2(self) -> ClaimResult:
        runs = self.runs("llama", precision=PAPER_4BIT)
        return self._result("C2", "4-bit: Stable-SPAM beats Adam, Adam+GradClip, Adafactor and SPAM (Table 1; "
                            "INT4 130M: 24.33 vs 26.4 / 26.30 / 25.11 / 25.03)",
                            self.pairwise(runs, "stable_spam", ("adam", "adam_clip", "adafactor", "spam")))

    def c3(self) -> ClaimResult:
        comparisons = []
        for low_bit in FOUR_BIT:
            for full in SIXTEEN_BIT:
                runs = self.runs("llama", precision=(low_bit, full))
                comparisons += self.pairwise(
                    runs, f"stable_spam ({low_bit})", (f"adam ({full})",), drop=("precision",),
                    pick_a=lambda g, p=low_bit: (g["recipe"] == "stable_spam") & _precision_is(g, p),
                    pick_b=lambda g, p=full: (g["recipe"] == "adam") & _precision_is(g, p))
        return self._result("C3", "4-bit Stable-SPAM beats 16-bit Adam (Fig. 1)", comparisons)

    def c4(self) -> ClaimResult:
        comparisons = []
        runs = self.runs("llama", recipes=("adam", "stable_spam"))
        for where, group in self.configs(runs):
            adam = at_best_lr(group[group["recipe"] == "adam"])
            spam = at_best_lr(group[group["recipe"] == "stable_spam"])
            adam = adam[adam["status"] == "finished"]
            spam = spam[spam["status"] == "finished"]
            if adam.empty or spam.empty:
                continue
            curves = self.store.curves_named("train", "loss", list(adam["run_id"]) + list(spam["run_id"]))
            smoothed = {i: (c.steps, telemetry.smooth(c.values, max(1, len(c.values) // 20))) for i, c in curves.items()}
            finals = [smoothed[i][1][-1] for i in adam["run_id"] if i in smoothed]
            if not finals:
                continue
            # Adam's length in steps is read off its curves (what it actually trained), not the config.
            target = float(np.mean(finals))
            total = float(max(smoothed[i][0][-1] + 1 for i in adam["run_id"] if i in smoothed))
            ratios = []
            for run_id in spam["run_id"]:
                if run_id in smoothed:
                    reached = telemetry.steps_to_target(*smoothed[run_id], target)
                    ratios.append(1.0 if reached is None else (reached + 1) / total)
            mean, low, high = bootstrap([ratios], lambda x: x)
            verdict = decide(low, high, STEPS_RATIO_LIMIT) if len(ratios) >= 2 else INCONCLUSIVE
            comparisons.append(Comparison(
                f"{where}: stable_spam reaches Adam's final training loss in about half the steps", verdict,
                f"target {target:.4g} (Adam's smoothed final loss, n={len(finals)}); steps ratio {mean:.3g} "
                f"[95% CI {low:.3g}, {high:.3g}] over n={len(ratios)} (1 = never reached)"))
        return self._result("C4", "Stable-SPAM reaches Adam's final loss in about half the steps", comparisons,
                            f"reproduced when the CI of (steps to Adam's final loss / Adam's steps) is below "
                            f"{STEPS_RATIO_LIMIT}")

    def c5(self) -> ClaimResult:
        runs = self.runs("llama", precision=SIXTEEN_BIT)
        return self._result("C5", "16-bit: Stable-SPAM beats Adam, Adam+GradClip, Adafactor, SPAM and Adam-mini "
                            "(Table 2; 130M: 22.21 vs 24.91 / 24.88 / 23.98 / 23.36 / 24.85)",
                            self.pairwise(runs, "stable_spam", ("adam", "adam_clip", "adafactor", "spam", "adam_mini")))

    def c6(self) -> ClaimResult:
        runs = self.runs("llama", precision=PAPER_4BIT)
        comparisons = (self.pairwise(runs, "lion_stable", ("lion",))
                       + self.pairwise(runs, "adam_mini_stable", ("adam_mini",)))
        return self._result("C6", "AdaGN + AdaClip improve Lion and Adam-mini in 4-bit (Table 3)", comparisons)

    def c7(self) -> ClaimResult:
        runs = self.runs("llama")
        full = "adam+moret+adagn+adaclip"
        rivals = ("adam", "adam+moret", "adam+moret+adaclip", "adam+moret+adagn", "adam+moret+adagn+spikeclip",
                  "adam+moret+gradclip+adaclip")
        comparisons = self.pairwise(runs, full, rivals) + self.pairwise(runs, "adam+moret", ("adam",))
        return self._result("C7", "Ablation: MoRet helps Adam and the full AdaGN + AdaClip + MoRet beats every "
                            "partial combination (Table 4)", comparisons)

    def c8(self) -> ClaimResult:
        comparisons = []
        runs = self.runs("llama", recipes=("adam", "stable_spam"), precision=FOUR_BIT)
        for where, group in self.configs(runs):
            adam, spam = group[group["recipe"] == "adam"], group[group["recipe"] == "stable_spam"]
            lrs = sorted(set(adam["lr"]) & set(spam["lr"]))
            if len(lrs) >= 2:
                comparisons.append(_sensitivity(spam[spam["lr"].isin(lrs)], adam[adam["lr"].isin(lrs)],
                                                "stable_spam", "adam", where))
        return self._result("C8", "4-bit Stable-SPAM's final-loss-vs-LR curve is flatter than Adam's (Fig. 7)",
                            comparisons, "sensitivity as in C1; lower is flatter")

    def c9(self) -> ClaimResult:
        comparisons = []
        runs = self.runs("llama", recipes=("adam", "stable_spam"))
        for where, group in self.configs(runs):
            spam = at_best_lr(group[group["recipe"] == "stable_spam"])
            adam = at_best_lr(group[group["recipe"] == "adam"])
            if spam.empty or adam.empty:
                continue
            # the headline metric is replaced by the spike count (lower is better) for the comparison
            as_spikes = lambda r: r.assign(metric_value=r["grad_norm_spikes"], status="finished",  # noqa: E731
                                           higher_is_better=False).dropna(subset=["metric_value"])
            a, b = as_spikes(spam), as_spikes(adam)
            if not a.empty and not b.empty:
                comparisons.append(beats(a, b, "stable_spam", "adam", f"{where} (gradient-norm spikes)"))
        return self._result("C9", "Stable-SPAM has fewer gradient-norm spikes than Adam (Table 10: FP4 26 vs 60)",
                            comparisons, f"spikes: z-score > {telemetry.SPIKE_THRESHOLD:g} against the previous "
                            f"{telemetry.SPIKE_WINDOW} steps (benchmarks.telemetry)")

    def c10(self) -> ClaimResult:
        runs = self.runs("llama", precision=("int2", "int3", "int4"))
        return self._result("C10", "Stable-SPAM beats Adam at INT2, INT3 and INT4 (Fig. 5)",
                            self.pairwise(runs, "stable_spam", ("adam",)))

    def c11(self) -> ClaimResult:
        return self._result("C11", "MoE (OLMoE): Stable-SPAM reaches a lower validation loss than Adam "
                            "(3k steps: 4.11 vs 4.65)", self.pairwise(self.runs("moe"), "stable_spam", ("adam",)))

    def c12(self) -> ClaimResult:
        return self._result("C12", "RL (MuJoCo): Stable-SPAM reaches a higher final test return than Adam "
                            "(HalfCheetah 6762.6 vs 5276.1)", self.pairwise(self.runs("mujoco"), "stable_spam", ("adam",)))

    def c13(self) -> ClaimResult:
        runs = self.runs("weather", recipes=("adam", "stable_spam", "spam"))
        comparisons = self.pairwise(runs, "stable_spam", ("spam",))
        for where, group in self.configs(runs, drop=("severity",)):
            by_severity = {}
            for severity, at in group.groupby(group["config"].map(lambda c: c.get("severity"))):
                adam = at_best_lr(at[at["recipe"] == "adam"])
                spam = at_best_lr(at[at["recipe"] == "stable_spam"])
                values = [x.loc[x["status"] == "finished", "metric_value"].dropna().to_numpy() for x in (adam, spam)]
                if all(len(v) for v in values):
                    by_severity[severity] = values
            if len(by_severity) < 2:
                continue
            low_s, high_s = min(by_severity), max(by_severity)
            groups = [*by_severity[high_s], *by_severity[low_s]]
            growth, low, high = bootstrap(groups, lambda ah, sh, al, sl: (ah - sh) - (al - sl))
            comparisons.append(Comparison(
                f"{where}: the advantage over Adam (Adam - Stable-SPAM test MSE) grows from severity {low_s} to "
                f"{high_s}", decide(-high, -low, 0.0),
                f"growth {growth:.4g} [95% CI {low:.4g}, {high:.4g}], n = "
                f"{'/'.join(str(len(g)) for g in groups)}"))
        return self._result("C13", "Weather: Stable-SPAM's advantage over Adam grows with anomaly severity, and it "
                            "beats SPAM at every severity", comparisons)

    def c14(self) -> ClaimResult:
        comparisons = []
        runs = self.runs("llama", recipes=("adam", "stable_spam"))
        for where, group in self.configs(runs):
            times = []
            for recipe in ("stable_spam", "adam"):
                done = group[(group["recipe"] == recipe) & (group["status"] == "finished")]
                times.append([_seconds_per_step(r) for _, r in done.iterrows()])
            if not all(times):
                continue
            ratio, low, high = bootstrap(times, lambda s, a: s / a)
            verdict = decide(low, high, OVERHEAD_LIMIT) if min(map(len, times)) >= 2 else INCONCLUSIVE
            comparisons.append(Comparison(
                f"{where}: Stable-SPAM's training time per step is within {OVERHEAD_LIMIT - 1:.0%} of Adam's", verdict,
                f"time ratio {ratio:.3g} [95% CI {low:.3g}, {high:.3g}], n = {len(times[0])}/{len(times[1])}"))
        return self._result("C14", "Stable-SPAM's overhead over Adam is negligible (Tables 11/12: 222 s vs 219 s)",
                            comparisons, "end-to-end time per step of the runs; benchmarks/perf measures the "
                            "optimizer step itself")


def _precision_is(runs: pd.DataFrame, precision: str) -> pd.Series:
    return runs["config"].map(lambda c: c.get("precision") == precision)


def _varying(runs: pd.DataFrame) -> list[str]:
    return varying_fields(runs) if not runs.empty else []


def _seconds_per_step(run: pd.Series) -> float:
    seconds = run["final_metrics"].get("seconds", run["wall_seconds"])
    return float(seconds) / max(1, run["budget"] or 1)


def _sensitivity(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str) -> Comparison:
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

    da, db = degradation(a), degradation(b)
    as_runs = lambda d, src: src.assign(metric_value=d, status="finished", higher_is_better=False)  # noqa: E731
    comparison = beats(as_runs(da, a), as_runs(db, b), name_a, name_b, f"{where} (LR sensitivity over "
                       f"{a['lr'].nunique()} LRs)")
    div = f"; diverged runs {name_a} {int((a['status'] == 'diverged').sum())}/{len(a)}, " \
          f"{name_b} {int((b['status'] == 'diverged').sum())}/{len(b)}"
    comparison.numbers += div
    return comparison


def audit(frame: pd.DataFrame, store: Store) -> list[ClaimResult]:
    """Audit every claim against ``frame`` (all runs of the store) and the store's curves."""
    return Audit(frame, store).audit()
