"""Degradation views: how much each recipe loses when a study turns up its stress, and how that compares to Adam.

A study has a **stress axis** when one of its grid fields (or the LR, when a recipe was swept over it) has an
unstressed value: anomaly ``severity`` 0, ``anomaly_fraction`` 0, ``precision`` fp32/bf16 (the full-precision
reference), the smallest ``lr`` of a sweep. A domain of your own names its axes in an optional class attribute,
``stress_fields = {"noise": 0.0}`` (field -> unstressed value), on top of these.

For every recipe and stressed level, per seed (the suite gives every recipe the same seeds, so the
comparisons are paired, :func:`benchmarks.analysis.inference.compare`):

* **degradation** = metric at the level − metric unstressed, signed so that positive is worse (for a
  higher-is-better metric, unstressed − level);
* **vs Adam** = the recipe's degradation − Adam's degradation on the same seed (negative: degrades less than
  Adam).

One table (``tables/<study>_<domain>_degradation_<axis>.md/.tex``) and one plot
(``plots/<study>_<domain>_<preset>_degradation_<axis>.png``) per study and axis: the answer to "which optimizer
degrades least", the least-degrading recipe of each level in bold. A recipe swept over LRs is taken at its best
LR at each level. Diverged and failed runs have no metric and drop out of the pairs (their count is shown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd
from matplotlib.figure import Figure

import domains
from benchmarks.analysis.frame import StudyGroup, at_best_lr, file_stem, study_groups
from benchmarks.analysis.inference import TestResult, compare
from benchmarks.outputs.figures import colors_for, save
from benchmarks.outputs.numbers import interval, plain, signed

REFERENCE_RECIPE = "adam"
FULL_PRECISION = ("fp32", "bf16", "fp16")  # the unstressed precision, the first one a study ran
LOWEST = object()  # "the smallest value the study ran" (severity 0, fraction 0, the smallest LR)
BUILT_IN_STRESS: Mapping[str, Any] = {"severity": LOWEST, "anomaly_fraction": LOWEST, "precision": FULL_PRECISION,
                                      "lr": LOWEST}
DECLARATION = "stress_fields"  # the optional Domain attribute: field -> unstressed value


@dataclass(frozen=True)
class StressAxis:
    """A grid field (or ``lr``) of a study with its unstressed value and the stressed levels, in order."""

    field: str
    reference: Any
    levels: tuple

    def describe(self, value) -> str:
        """``severity=2`` / ``precision=int4`` / ``lr=0.003``."""
        return f"{self.field}={plain(value) if isinstance(value, float) else value}"


@dataclass(frozen=True)
class Cell:
    """One recipe at one stressed level (in one context of the other grid fields)."""

    label: str
    level: Any
    degradation: TestResult
    vs_adam: TestResult | None
    not_finished: int  # runs at the level or unstressed that were not finished (dropped from the pairs)


def declared_stress(domain_name: str) -> dict[str, Any]:
    """The built-in stress fields plus those the domain ``domain_name`` declares (``stress_fields``)."""
    fields = dict(BUILT_IN_STRESS)
    try:
        fields.update(getattr(domains.get(domain_name), DECLARATION, None) or {})
    except (ValueError, ImportError):
        pass
    return fields


def stress_axes(group: StudyGroup) -> list[StressAxis]:
    """The study's stress axes: its varying grid fields with a known unstressed value among the values it ran,
    and ``lr`` when some recipe was run at more than one LR."""
    declared = declared_stress(group.domain)
    candidates = {f: sorted({c.get(f) for c in group.runs["config"]}, key=_order) for f in group.grid_fields}
    if any(group.lr_swept(label) for label in set(group.runs["label"])):
        candidates["lr"] = sorted(set(group.runs["lr"].dropna()))
    axes = []
    for field, values in candidates.items():
        if field not in declared or len(values) < 2:
            continue
        reference = _reference(declared[field], values)
        if reference is None:
            continue
        axes.append(StressAxis(field, reference, tuple(v for v in values if v != reference)))
    return axes


def _reference(rule, values: list):
    if rule is LOWEST:
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return min(numbers) if numbers else None
    options = rule if isinstance(rule, (tuple, list)) else (rule,)
    return next((option for option in options if option in values), None)


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _value_of(run: pd.Series, field: str):
    return run["lr"] if field == "lr" else run["config"].get(field)


def contexts(group: StudyGroup, axis: StressAxis) -> Iterator[tuple[str, pd.DataFrame]]:
    """(context text, runs) for each combination of the other grid fields (``""`` when there is none)."""
    others = [f for f in group.grid_fields if f != axis.field]
    runs = group.runs.assign(context=[", ".join(f"{f}={c.get(f)}" for f in others) for c in group.runs["config"]])
    for context, at in runs.groupby("context", sort=True):
        yield context, at


def per_seed(runs: pd.DataFrame, axis: StressAxis, value, label: str) -> tuple[dict[int, float], int]:
    """seed -> metric of ``label`` at ``axis = value`` (best LR when swept over a config axis), and the number of
    its runs there that did not finish."""
    at = runs[(runs["label"] == label) & runs.apply(lambda r: _value_of(r, axis.field) == value, axis=1)]
    if axis.field != "lr" and at["lr"].nunique() > 1:
        at = at_best_lr(at)
    finished = at[at["status"] == "finished"]
    values = {int(s): float(v) for s, v in zip(finished["seed"], finished["metric_value"]) if v is not None}
    return values, int((at["status"] != "finished").sum())


def degradation_cells(group: StudyGroup, axis: StressAxis, runs: pd.DataFrame) -> list[Cell]:
    """Every (recipe, stressed level) of one context: degradation and degradation minus Adam's, paired by seed."""
    higher = bool(group.runs.iloc[0]["higher_is_better"])
    labels = sorted(set(runs["label"]), key=lambda label: (label != REFERENCE_RECIPE, label))
    per_level: dict[tuple[str, Any], dict[int, float]] = {}
    cells = []
    for label in labels:
        base, base_missing = per_seed(runs, axis, axis.reference, label)
        for level in axis.levels:
            stressed, missing = per_seed(runs, axis, level, label)
            shared = sorted(set(base) & set(stressed))
            losses = {s: (base[s] - stressed[s]) if higher else (stressed[s] - base[s]) for s in shared}
            per_level[(label, level)] = losses
            worse, better = (base, stressed) if higher else (stressed, base)
            cells.append(Cell(label, level, compare(worse, better), None, missing + base_missing))
    if REFERENCE_RECIPE in labels:
        cells = [Cell(c.label, c.level, c.degradation,
                      compare(per_level[(c.label, c.level)], per_level[(REFERENCE_RECIPE, c.level)])
                      if c.label != REFERENCE_RECIPE else None, c.not_finished) for c in cells]
    return cells


def least_degrading(cells: list[Cell]) -> dict[Any, str]:
    """level -> the label with the smallest mean degradation there (ties: the first label)."""
    best: dict[Any, tuple[float, str]] = {}
    for cell in cells:
        estimate = cell.degradation.estimate
        if math.isfinite(estimate) and (cell.level not in best or estimate < best[cell.level][0]):
            best[cell.level] = (estimate, cell.label)
    return {level: label for level, (_, label) in best.items()}


def _result_text(result: TestResult | None, not_finished: int = 0) -> str:
    if result is None:
        return "—"
    n = f"n={result.n}" + (f", {not_finished} not finished" if not_finished else "")
    return f"{signed(result.estimate)} {interval(result.low, result.high)} ({n})"


@dataclass
class DegradationTable:
    """One study's degradation along one axis: rows per recipe, a pair of columns per (context, level)."""

    title: str
    caption: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], str]


def degradation_table(group: StudyGroup, axis: StressAxis, hparams_note: str = "") -> DegradationTable:
    """The table of :func:`degradation_cells` over every context; the least-degrading recipe of each level in
    bold. ``hparams_note``: the hyper-parameters that differ between recipes, for the caption."""
    metric = group.runs.iloc[0]["metric"]
    rows: list[str] = []
    columns: list[str] = []
    texts: dict[tuple[str, str], str] = {}
    has_adam = REFERENCE_RECIPE in set(group.runs["label"])
    for context, runs in contexts(group, axis):
        cells = degradation_cells(group, axis, runs)
        best = least_degrading(cells)
        prefix = f"{context}, " if context else ""
        for cell in cells:
            if cell.label not in rows:
                rows.append(cell.label)
            level = prefix + axis.describe(cell.level)
            column = f"{level}: degradation"
            text = _result_text(cell.degradation, cell.not_finished)
            texts[(cell.label, column)] = f"**{text}**" if best.get(cell.level) == cell.label else text
            if column not in columns:
                columns.append(column)
            if has_adam:
                versus = f"{level}: − adam's"
                texts[(cell.label, versus)] = _result_text(cell.vs_adam) if cell.vs_adam else "0 (reference)"
                if versus not in columns:
                    columns.append(versus)
    direction = "higher" if group.runs.iloc[0]["higher_is_better"] else "lower"
    caption = (f"Degradation of {metric} ({direction} is better) from {axis.describe(axis.reference)}: the metric's "
               f"change, positive = worse, mean over seeds with a paired 95% t interval [low, high]; "
               + ("'− adam's' = the recipe's degradation minus Adam's on the same seed (negative: degrades less "
                  "than Adam); " if has_adam else "")
               + f"bold = degrades least at that level. {group.describe()}.")
    if hparams_note:
        caption += f" {hparams_note}"
    return DegradationTable(title=f"Study {group.study}: {group.domain} ({group.preset}), degradation along "
                                  f"{axis.field}", caption=caption, rows=rows, columns=columns, cells=texts)


def plot_degradation(group: StudyGroup, axis: StressAxis) -> Figure | None:
    """Two panels per context: degradation vs level, and degradation minus Adam's vs level (95% CIs)."""
    sections = [(context, degradation_cells(group, axis, runs)) for context, runs in contexts(group, axis)]
    sections = [(context, cells) for context, cells in sections if cells][:3]
    if not sections:
        return None
    has_adam = any(c.vs_adam is not None for _, cells in sections for c in cells)
    panels = 2 if has_adam else 1
    figure = Figure(figsize=(5.4 * panels, 3.9 * len(sections)), layout="constrained")
    axes = figure.subplots(len(sections), panels, squeeze=False)
    metric = group.runs.iloc[0]["metric"]
    figure.suptitle(f"Degradation of {metric} from {axis.describe(axis.reference)} — study {group.study}\n"
                    f"{group.describe()}", fontsize=9)
    levels = (axis.reference,) + axis.levels
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels)
    position = {v: (v if numeric else i) for i, v in enumerate(levels)}
    labels = sorted({c.label for _, cells in sections for c in cells})
    colors = colors_for(labels)
    for row, (context, cells) in enumerate(sections):
        for panel, (what, pick) in enumerate((("degradation (positive = worse)", lambda c: c.degradation),
                                              ("degradation − Adam's (negative = degrades less)",
                                               lambda c: c.vs_adam))[:panels]):
            ax = axes[row][panel]
            for index, label in enumerate(labels):
                points = [(c.level, pick(c)) for c in cells if c.label == label]
                if panel == 1 and label == REFERENCE_RECIPE:
                    continue
                dodge = 0.0 if numeric else (index - (len(labels) - 1) / 2) * 0.12
                xs, ys, lows, highs = [position[axis.reference] + dodge], [0.0], [0.0], [0.0]
                for level, result in points:
                    if result is None or not math.isfinite(result.estimate):
                        continue
                    xs.append(position[level] + dodge)
                    ys.append(result.estimate)
                    low = result.low if math.isfinite(result.low) else result.estimate
                    high = result.high if math.isfinite(result.high) else result.estimate
                    lows.append(result.estimate - low)
                    highs.append(high - result.estimate)
                ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, color=colors[label], label=label,
                            linestyle="-" if numeric else "none")
            ax.axhline(0.0, color="black", linewidth=0.6)
            ax.set_title((f"{context}: " if context else "") + what, fontsize=8)
            ax.set_xlabel(axis.field)
            ax.set_ylabel(f"Δ {metric}")
            if axis.field == "lr":
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(list(position.values()), [str(v) for v in levels])
                ax.set_xlim(-0.5, len(levels) - 0.5)
            ax.legend(fontsize=7)
    return figure


def to_markdown(table: DegradationTable) -> str:
    """Markdown of a degradation table."""
    header = "| recipe | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---|" * len(table.columns)
    lines = [f"| {row} | " + " | ".join(table.cells.get((row, c), "—") for c in table.columns) + " |"
             for row in table.rows]
    return "\n".join([f"### {table.title}", "", table.caption, "", header, rule, *lines, ""])


def write_degradation_tables(frame: pd.DataFrame, out: Path, hparams_note=None) -> list[Path]:
    """Write ``tables/<study>_<domain>_degradation_<axis>.md/.tex`` for every study with a stress axis; returns
    the paths. ``hparams_note(group) -> str`` gives each caption its hyper-parameter line."""
    from benchmarks.outputs.tables import Pivot, to_latex

    by_file: dict[str, list[DegradationTable]] = {}
    for group in study_groups(frame):
        note = hparams_note(group) if hparams_note else ""
        for axis in stress_axes(group):
            stem = file_stem(f"{group.study}_{group.domain}_degradation_{axis.field}")
            by_file.setdefault(stem, []).append(degradation_table(group, axis, note))
    written = []
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, found in sorted(by_file.items()):
        md, tex = folder / f"{stem}.md", folder / f"{stem}.tex"
        md.write_text("\n".join(to_markdown(t) for t in found), encoding="utf-8")
        tex.write_text(to_latex([Pivot(t.title, t.caption, t.rows, t.columns, t.cells) for t in found]),
                       encoding="utf-8")
        written += [md, tex]
    return written


def write_degradation_plots(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``plots/<study>_<domain>_<preset>_degradation_<axis>.png`` for every study with a stress axis."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for group in study_groups(frame):
        for axis in stress_axes(group):
            stem = file_stem(f"{group.study}_{group.domain}_{group.preset}_degradation_{axis.field}")
            written += save(plot_degradation(group, axis), folder / f"{stem}.png")
    return written
