"""Tables: ``OUT/runs.csv`` (+ ``runs.parquet``) and per-study pivots ``OUT/tables/<study>_<domain>.md/.tex``.

A pivot has one row per recipe (plus its variant, plus the LR where the LR was swept), one column per grid
point (the config fields that vary in the study: precision, severity, env, ...), and cells
``mean ± std (n=k)`` over the finished seeds, followed by the number of diverged and failed runs. A file holds
one section per preset, each headed by the domain, preset, algorithm, budget, metric and seeds.

Where the headline metric was evaluated during training (an eval curve with two or more steps), a
checkpoint table ``OUT/tables/<study>_<domain>_checkpoints.md/.tex`` gives it at (up to) three evaluation steps,
the ones nearest a third, two thirds and all of the run: the paper's layout for OLMoE (steps 1k/2k/3k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from benchmarks.analysis import regime
from benchmarks.analysis.frame import StudyGroup, file_stem, flat_frame, study_groups
from benchmarks.analysis.stats import summarize
from benchmarks.outputs.degradation import write_degradation_tables
from benchmarks.outputs.numbers import mean_pm
from benchmarks.store import Store

CHECKPOINTS = 3


@dataclass
class Pivot:
    """A rendered-agnostic pivot: row labels, column labels and cell texts."""

    title: str
    caption: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], str]


def write_runs_csv(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Write the long-format run table as ``runs.csv`` and ``runs.parquet``; returns the paths."""
    flat = flat_frame(frame)
    csv_path, parquet_path = out / "runs.csv", out / "runs.parquet"
    flat.to_csv(csv_path, index=False)
    written = [csv_path]
    try:
        flat.astype({c: "string" for c in flat.columns if flat[c].dtype == object}).to_parquet(parquet_path, index=False)
        written.append(parquet_path)
    except ImportError:  # pyarrow is optional for the CSV
        pass
    return written


def cell_text(values, statuses) -> str:
    """``mean ± std (n=k)`` of the finished values, then ``d div`` / ``f failed`` counts."""
    statuses = list(statuses)
    diverged, failed = statuses.count("diverged"), statuses.count("failed")
    finished = [v for v, s in zip(values, statuses) if s == "finished"]
    summary = summarize(finished)
    extras = ([f"{diverged} div"] if diverged else []) + ([f"{failed} failed"] if failed else [])
    if summary.n == 0:
        return "— (" + ", ".join(extras or ["no finished run"]) + ")"
    return mean_pm(summary.mean, summary.std) + " (" + ", ".join([f"n={summary.n}"] + extras) + ")"


def pivot(group: StudyGroup) -> Pivot:
    """The pivot of one (study, domain, preset)."""
    runs = group.runs.assign(row=[group.row_key(r) for _, r in group.runs.iterrows()],
                             column=[group.column_key(c) for c in group.runs["config"]])
    runs = runs.sort_values(["recipe", "variant", "lr"], kind="stable")
    rows = list(dict.fromkeys(runs["row"]))
    columns = list(dict.fromkeys(group.column_key(c) for c in _sorted_configs(group)))
    cells = {(row, column): cell_text(cell["metric_value"].tolist(), cell["status"].tolist()) + regime_mark(cell)
             for (row, column), cell in runs.groupby(["row", "column"], sort=False)}
    metric = group.runs.iloc[0]["metric"]
    return Pivot(title=f"Study {group.study}: {group.domain} ({group.preset})",
                 caption=_with_hparams(f"{metric}, mean ± sample std (n) over finished seeds: {group.describe()}{REGIME_LEGEND}", group),
                 rows=rows, columns=columns, cells=cells)


REGIME_LEGEND = (f"; † out of regime (the cell's mean does not beat the strongest trivial baseline by "
                 f"{regime.MARGIN:.0%}), ? regime unknown")


def regime_mark(cell: pd.DataFrame) -> str:
    """`` †`` for a cell out of regime, `` ?`` for unknown, nothing in regime (:mod:`benchmarks.analysis.regime`;
    nothing when the frame carries no ``baselines`` column)."""
    if "baselines" not in cell:
        return ""
    state, _ = regime.cell_regime(cell)
    return "" if state is True else (" †" if state is False else " ?")


def checkpoint_steps(steps: Iterable[int], count: int = CHECKPOINTS) -> list[int]:
    """The evaluation steps nearest ``1/count, 2/count, ..., 1`` of the last one (all of them when there are
    no more than ``count``), sorted and without repeats."""
    unique = sorted({int(s) for s in steps})
    if len(unique) <= count:
        return unique
    targets = [unique[-1] * i / count for i in range(1, count + 1)]
    return sorted({min(unique, key=lambda s: (abs(s - target), s)) for target in targets})


def checkpoint_pivot(group: StudyGroup, store: Store) -> Pivot | None:
    """The headline metric at the checkpoints of :func:`checkpoint_steps`, one column per (grid point, step);
    None when the metric was evaluated at fewer than two steps. Cells summarise the finished runs."""
    runs = group.runs.sort_values(["recipe", "variant", "lr"], kind="stable")
    metric = runs.iloc[0]["metric"]
    curves = store.curves_named("eval", metric, runs["run_id"])
    steps = checkpoint_steps(np.concatenate([c.steps for c in curves.values()])) if curves else []
    if len(steps) < 2:
        return None
    grid_columns = list(dict.fromkeys(group.column_key(c) for c in _sorted_configs(group)))

    def name(column: str, step: int) -> str:
        return f"step {step}" if column == "all" else f"{column}, step {step}"

    values: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for _, run in runs.iterrows():
        curve = curves.get(run["run_id"])
        at = {} if curve is None else dict(zip(curve.steps.tolist(), curve.values.tolist()))
        for step in steps:
            key = (group.row_key(run), name(group.column_key(run["config"]), step))
            values.setdefault(key, []).append((at.get(step, math.nan), run["status"]))
    cells = {key: cell_text(*zip(*pairs)) for key, pairs in values.items()}
    rows = list(dict.fromkeys(group.row_key(run) for _, run in runs.iterrows()))
    columns = [name(column, step) for column in grid_columns for step in steps]
    return Pivot(title=f"Study {group.study}: {group.domain} ({group.preset}), {metric} at checkpoints",
                 caption=_with_hparams(f"{metric} at evaluation steps {', '.join(map(str, steps))}: "
                                       f"{group.describe()}", group),
                 rows=rows, columns=columns, cells=cells)


def differing_hparams(runs: pd.DataFrame) -> dict[str, dict[str, str]]:
    """label -> {hyper-parameter: value text} for the hyper-parameters whose values differ between the labels
    of ``runs`` (a key one label lacks counts as differing; ``lr`` only when the labels' LRs differ). A value
    that varies within a label (a swept LR, a budget-derived ``total_T``) shows every value, ``a/b``."""
    per_label: dict[str, dict[str, set]] = {}
    for label, hparams in zip(runs["label"], runs["hparams"]):
        entry = per_label.setdefault(label, {})
        for key, value in hparams.items():
            entry.setdefault(key, set()).add(_hparam_text(value))
    keys = sorted({key for entry in per_label.values() for key in entry})
    differing = [key for key in keys
                 if len({tuple(sorted(entry.get(key, {"—"}))) for entry in per_label.values()}) > 1]
    return {label: {key: "/".join(sorted(entry[key], key=_numeric_first)) for key in differing if key in entry}
            for label, entry in sorted(per_label.items())}


def hparams_note(group: StudyGroup) -> str:
    """One caption sentence naming the hyper-parameters that differ between the recipes of ``group``
    (``Hyper-parameters that differ: spam: reset_interval=25, warmup=8; stable_spam: gamma1=0.7, ...``), or
    ``""`` when there is one recipe or none differ."""
    differing = {label: values for label, values in differing_hparams(group.runs).items() if values}
    if len(set(group.runs["label"])) < 2 or not differing:
        return ""
    parts = ["{}: {}".format(label, ", ".join(f"{k}={v}" for k, v in values.items()))
             for label, values in differing.items()]
    return "Hyper-parameters that differ between recipes: " + "; ".join(parts) + "."


def _with_hparams(caption: str, group: StudyGroup) -> str:
    note = hparams_note(group)
    return f"{caption}. {note}" if note else caption


def _hparam_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(_hparam_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _numeric_first(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _sorted_configs(group: StudyGroup) -> list[dict]:
    def key(config):
        return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
                     for v in (config.get(f) for f in group.grid_fields))
    return sorted(group.runs["config"], key=key)


def to_markdown(pivots: list[Pivot]) -> str:
    """Markdown text of one or more pivots (one section each)."""
    parts = []
    for p in pivots:
        header = "| recipe | " + " | ".join(p.columns) + " |"
        rule = "|---|" + "---|" * len(p.columns)
        lines = [f"| {row} | " + " | ".join(p.cells.get((row, c), "") for c in p.columns) + " |" for row in p.rows]
        parts.append("\n".join([f"### {p.title}", "", p.caption, "", header, rule, *lines, ""]))
    return "\n".join(parts)


def to_latex(pivots: list[Pivot]) -> str:
    """LaTeX (booktabs) text of one or more pivots, one ``table`` environment each."""
    parts = []
    for p in pivots:
        spec = "l" + "c" * len(p.columns)
        head = " & ".join(["recipe", *(_tex(c) for c in p.columns)]) + r" \\"
        body = [" & ".join([_tex(row), *(_tex(p.cells.get((row, c), "")) for c in p.columns)]) + r" \\" for row in p.rows]
        parts.append("\n".join([
            r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex(p.title)}. {_tex(p.caption)}}}",
            rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule", *body, r"\bottomrule",
            r"\end{tabular}", r"\end{table}", "",
        ]))
    return "\n".join(parts)


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    text = str(text)
    if text.startswith("**") and text.endswith("**") and len(text) > 4:  # Markdown bold -> \textbf
        return r"\textbf{" + _tex(text[2:-2]) + "}"
    escaped = "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)
    return (escaped.replace("±", r"$\pm$").replace("—", "--").replace("–", "--").replace("−", "-")
            .replace("∞", r"$\infty$"))


def write_study_tables(frame: pd.DataFrame, out: Path,
                       checkpoints: Mapping[tuple[str, str, str], Pivot | None] | None = None) -> list[Path]:
    """Write ``tables/<study>_<domain>.md`` and ``.tex`` for every study and domain, and the
    ``<study>_<domain>_checkpoints`` tables of the (study, domain, preset) pivots in ``checkpoints``
    (:func:`checkpoint_pivot`; None where they do not apply); returns the paths."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[Pivot]] = {}
    for group in study_groups(frame):
        by_file.setdefault(f"{group.study}_{group.domain}", []).append(pivot(group))
        at_checkpoints = (checkpoints or {}).get((group.study, group.domain, group.preset))
        if at_checkpoints is not None:
            by_file.setdefault(f"{group.study}_{group.domain}_checkpoints", []).append(at_checkpoints)
    written = []
    for stem, pivots in sorted(by_file.items()):
        for suffix, render in ((".md", to_markdown), (".tex", to_latex)):
            path = folder / f"{file_stem(stem)}{suffix}"
            path.write_text(render(pivots), encoding="utf-8")
            written.append(path)
    return written + write_degradation_tables(frame, out, hparams_note)

