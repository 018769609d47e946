"""What every plot shares: colours per label, one panel per grid point, the mean curve over seeds, saving.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`), never pyplot: no global
figure state and no backend to select, and ``savefig`` renders PNG through Agg.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from benchmarks.analysis.frame import StudyGroup, at_best_lr
from benchmarks.store import Curve

MAX_PANELS = 6
DIVERGED_STYLE = dict(marker="x", color="red", markersize=9, linestyle="none")  # x marks a divergence


def save(figure: Figure | None, path: Path) -> list[Path]:
    """Write ``figure`` as PNG at ``path``; returns ``[path]``, or ``[]`` when there is no figure."""
    if figure is None:
        return []
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return [path]


def colors_for(labels) -> dict[str, tuple]:
    """label -> colour, stable for a set of labels (sorted)."""
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def grid_panels(group: StudyGroup, title: str, sharey: bool = False) -> tuple[Figure, dict]:
    """A figure with one panel per grid point of ``group`` (the first MAX_PANELS), titled; (figure, column -> axes)."""
    columns = list(dict.fromkeys(group.column_key(c) for c in group.runs["config"]))
    shown = columns[:MAX_PANELS]
    figure = Figure(figsize=(5.2 * len(shown), 4.2), layout="constrained")
    axes = figure.subplots(1, len(shown), squeeze=False, sharey=sharey)
    more = f" (first {MAX_PANELS} of {len(columns)} grid points)" if len(columns) > len(shown) else ""
    figure.suptitle(f"{title} — study {group.study}{more}\n{group.describe()}", fontsize=9)
    return figure, dict(zip(shown, axes[0]))


def mean_curve(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean value over the curves at each step), non-finite values left out."""
    steps = np.concatenate([c.steps for c in curves])
    values = np.concatenate([c.values for c in curves])
    keep = np.isfinite(values)
    unique, index = np.unique(steps[keep], return_inverse=True)
    sums = np.bincount(index, weights=values[keep], minlength=len(unique))
    counts = np.bincount(index, minlength=len(unique))
    return unique, sums / counts


def curve_cells(group: StudyGroup):
    """(grid column, legend label, runs) for curve plots; a label whose LR was swept shows its best LR only."""
    runs = group.runs
    for (column, label), cell in runs.groupby([runs["config"].map(group.column_key), "label"], sort=True):
        if group.lr_swept(label):
            cell = at_best_lr(cell)
            yield column, label, f"{label} (best lr={cell.iloc[0]['lr']:g})", cell
        else:
            yield column, label, label, cell
