"""What every plot shares: colours per label, one panel per grid point, the mean curve over seeds, saving.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`), never pyplot: no global
figure state and no backend to select, and ``savefig`` renders PNG through Agg.
"""

from __future__ import annotations

import zlib
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


# One colour per recipe in every plot of every study (adam is always blue, stable_spam always red).
RECIPE_COLORS = {
    "adam": "#1f77b4", "stable_spam": "#d62728", "spam": "#ff7f0e", "adam_clip": "#2ca02c", "adafactor": "#9467bd",
    "adamw": "#17becf", "lion": "#8c564b", "adam_mini": "#e377c2", "stable_spam_ref": "#bcbd22",
    "lion_stable": "#7f7f7f", "adam_mini_stable": "#aec7e8", "adam+moret": "#98df8a", "adam+moret+adaclip": "#c5b0d5",
    "adam+moret+adagn": "#c49c94", "adam+moret+adagn+adaclip": "#ff9896", "adam+moret+adagn+spikeclip": "#f7b6d2",
    "adam+moret+gradclip+adaclip": "#dbdb8d",
}
_OTHER = "tab20b"  # recipes outside RECIPE_COLORS (a user's), and a recipe's non-default variants


def recipe_of(label: str) -> str:
    """The recipe name of a label (``stable_spam [gamma1=0.5]`` -> ``stable_spam``)."""
    return label.split(" [", 1)[0]


def recipe_color(recipe: str):
    """The fixed colour of ``recipe`` (a stable hash of the name into a second palette for unknown recipes)."""
    if recipe in RECIPE_COLORS:
        return matplotlib.colors.to_rgba(RECIPE_COLORS[recipe])
    cmap = matplotlib.colormaps[_OTHER]
    return cmap(zlib.crc32(recipe.encode()) % cmap.N)


def colors_for(labels) -> dict[str, tuple]:
    """label -> colour: a recipe's default label always gets the recipe's fixed colour (:data:`RECIPE_COLORS`),
    whatever else is plotted; its variants (``stable_spam [gamma1=0.5]``) get shades of another palette, in a
    stable order, so they stay distinct from each other and from the other recipes."""
    colors = {}
    variants = sorted(label for label in set(labels) if recipe_of(label) != label)
    cmap = matplotlib.colormaps[_OTHER]
    for label in set(labels):
        if recipe_of(label) == label:
            colors[label] = recipe_color(label)
    for i, label in enumerate(variants):
        colors[label] = cmap(i % cmap.N)
    return colors


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
