"""Tables: ``OUT/runs.csv`` (+ ``runs.parquet``) and per-study pivots ``OUT/tables/<study>_<domain>.md/.tex``.

A pivot has one row per recipe (plus its variant, plus the LR where the LR was swept), one column per grid
point (the config fields that vary in the study: precision, severity, env, ...), and cells
``mean ± std (n=k)`` over the finished seeds, followed by the number of diverged and failed runs. A file holds
one section per preset, each headed by the domain, preset, algorithm, budget, metric and seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.frame import StudyGroup, file_stem, flat_frame, study_groups
from benchmarks.stats import summarize


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
    spread = f" ± {summary.std:.2g}" if not math.isnan(summary.std) else ""
    return f"{summary.mean:.4g}{spread} (" + ", ".join([f"n={summary.n}"] + extras) + ")"


def pivot(group: StudyGroup) -> Pivot:
    """The pivot of one (study, domain, preset)."""
    runs = group.runs.assign(row=[group.row_key(r) for _, r in group.runs.iterrows()],
                             column=[group.column_key(c) for c in group.runs["config"]])
    runs = runs.sort_values(["recipe", "variant", "lr"], kind="stable")
    rows = list(dict.fromkeys(runs["row"]))
    columns = list(dict.fromkeys(group.column_key(c) for c in _sorted_configs(group)))
    cells = {(row, column): cell_text(cell["metric_value"].tolist(), cell["status"].tolist())
             for (row, column), cell in runs.groupby(["row", "column"], sort=False)}
    metric = group.runs.iloc[0]["metric"]
    return Pivot(title=f"Study {group.study}: {group.domain} ({group.preset})",
                 caption=f"{metric}: {group.describe()}", rows=rows, columns=columns, cells=cells)


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
    escaped = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return escaped.replace("±", r"$\pm$").replace("—", "--").replace("–", "--")


def write_study_tables(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``tables/<study>_<domain>.md`` and ``.tex`` for every study and domain; returns the paths."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[Pivot]] = {}
    for group in study_groups(frame):
        by_file.setdefault(f"{group.study}_{group.domain}", []).append(pivot(group))
    written = []
    for stem, pivots in sorted(by_file.items()):
        for suffix, render in ((".md", to_markdown), (".tex", to_latex)):
            path = folder / f"{file_stem(stem)}{suffix}"
            path.write_text(render(pivots), encoding="utf-8")
            written.append(path)
    return written

