"""Share-matrix plots: eval series that a domain declares as a matrix of shares (each row a distribution over
its columns, e.g. MoE routing: the fraction of top-k assignments per expert, one row per layer).

A domain declares them in an optional class attribute, read with ``getattr`` (none by default)::

    share_matrices = {
        "expert_load": {                                   # the plot's file suffix: ..._expert_load.png
            "series": "expert_load/L{row}/E{column}",      # the eval series, {row} and {column} integers
            "title": "Expert load (fraction of top-k assignments)",
            "rows": "layer", "columns": "expert",          # axis labels
            "trend": "load_cv_mean",                       # optional: an eval series plotted over training
            "trend_title": "load imbalance during training",
            "trend_label": "coefficient of variation of the load (mean over layers)",
        },
    }

Per (study, domain, preset) and declared matrix: one heat map per recipe label (at its best LR; first grid
points) of the shares at the last evaluation, mean over the finished seeds, coloured around the even share
1/columns; and, when the trend series was logged, its mean over seeds against the step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

import domains
from benchmarks.analysis.frame import StudyGroup
from benchmarks.outputs.figures import MAX_PANELS, colors_for, curve_cells, mean_curve
from benchmarks.store import Store

DECLARATION = "share_matrices"  # the optional Domain attribute


@dataclass(frozen=True)
class ShareMatrix:
    """One declared share matrix (see the module docstring)."""

    name: str
    series: str
    title: str
    rows: str
    columns: str
    trend: str | None = None
    trend_title: str = ""
    trend_label: str = ""

    @property
    def prefix(self) -> str:
        """The series names' common start (what precedes ``{row}``)."""
        return self.series.split("{", 1)[0]

    def cell(self, name: str) -> tuple[int, int] | None:
        """(row, column) of a series name, or None when it is not one of this matrix's."""
        pattern = re.escape(self.series).replace(r"\{row\}", r"(?P<row>\d+)").replace(r"\{column\}", r"(?P<column>\d+)")
        found = re.fullmatch(pattern, name)
        return (int(found["row"]), int(found["column"])) if found else None


def declared_share_matrices(domain_name: str) -> list[ShareMatrix]:
    """The share matrices the domain ``domain_name`` declares (none when it is not registered here)."""
    try:
        domain = domains.get(domain_name)
    except (ValueError, ImportError):
        return []
    declared: Mapping[str, Mapping[str, Any]] = getattr(domain, DECLARATION, None) or {}
    return [ShareMatrix(name=name, **fields) for name, fields in declared.items()]


def final_shares(store: Store, run_ids, matrix: ShareMatrix) -> tuple[np.ndarray, int] | None:
    """Mean over ``run_ids`` of the ``(rows, columns)`` matrix at each run's last evaluation, and the last
    evaluation step; None when none of them logged the matrix's series."""
    ids = list(run_ids)
    cells = {name: matrix.cell(name) for name in store.curve_names("eval", ids, matrix.prefix)}
    cells = {name: index for name, index in cells.items() if index is not None}
    if not cells:
        return None
    rows, columns = (max(index[i] for index in cells.values()) + 1 for i in (0, 1))
    sums, counts, last = np.zeros((rows, columns)), np.zeros((rows, columns)), 0
    for name, (row, column) in cells.items():
        for _, curve in store.iter_curves("eval", name, ids):
            if len(curve.values) and np.isfinite(curve.values[-1]):
                sums[row, column] += curve.values[-1]
                counts[row, column] += 1
                last = max(last, int(curve.steps[-1]))
    if not counts.any():
        return None
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0), last


def plot_share_matrix(group: StudyGroup, store: Store, matrix: ShareMatrix) -> Figure | None:
    """The heat maps (and trend) of ``matrix`` for one study group; None when no finished run logged it."""
    runs = group.runs
    finished = runs[runs["status"] == "finished"]
    if finished.empty or not store.curve_names("eval", finished["run_id"], matrix.prefix):
        return None
    maps = []
    for column, label, legend, cell in curve_cells(group):
        loaded = final_shares(store, cell.loc[cell["status"] == "finished", "run_id"], matrix)
        if loaded is not None:
            maps.append((column, label, legend, cell, *loaded))
    maps = maps[:MAX_PANELS]
    if not maps:
        return None
    trend_curves = store.curves_named("eval", matrix.trend, finished["run_id"]) if matrix.trend else {}
    panels = len(maps) + bool(trend_curves)
    figure = Figure(figsize=(4.8 * panels, 4.2), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)
    figure.suptitle(f"{matrix.title} — study {group.study}\n{group.describe()}", fontsize=9)
    highest = max(float(np.nanmax(shares)) for *_, shares, _ in maps)
    for ax, (column, label, legend, cell, shares, step) in zip(axes[0], maps):
        even = 1.0 / shares.shape[1]
        image = ax.imshow(shares, cmap="RdBu_r", aspect="auto",
                          norm=TwoSlopeNorm(vcenter=even, vmin=0.0, vmax=max(highest, 2 * even)))
        if shares.size <= 256:
            for (row, col), value in np.ndenumerate(shares):
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6)
        n = int((cell["status"] == "finished").sum())
        where = "" if column == "all" else f"{column}\n"
        ax.set_title(f"{where}{legend}, step {step} (n={n})", fontsize=8)
        ax.set_xlabel(matrix.columns)
        ax.set_ylabel(matrix.rows)
        ax.set_xticks(range(shares.shape[1]))
        ax.set_yticks(range(shares.shape[0]))
        figure.colorbar(image, ax=ax, shrink=0.8, label=f"fraction (uniform = {even:.3g})")
    if trend_curves:
        ax = axes[0][-1]
        colors = colors_for(set(runs["label"]))
        for column, label, legend, cell in curve_cells(group):
            found = [trend_curves[i] for i in cell["run_id"] if i in trend_curves and len(trend_curves[i].steps)]
            if found:
                steps, mean = mean_curve(found)
                suffix = "" if column == "all" else f" [{column}]"
                ax.plot(steps, mean, marker="o", color=colors[label], label=f"{legend}{suffix} (n={len(found)})")
        ax.set_title(matrix.trend_title, fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel(matrix.trend_label)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return figure
