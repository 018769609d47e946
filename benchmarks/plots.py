"""PNG plots under ``OUT/plots/`` (matplotlib, Agg backend), each titled with what was run.

Per (study, domain, preset), file stem ``<study>_<domain>_<preset>``:

* ``_loss.png``       training loss vs step, mean over seeds, one panel per grid point; x = divergence;
* ``_grad_norm.png``  gradient-norm traces (before the optimizer's transforms) of the first seed, spikes dotted;
* ``_lr.png``         final metric vs LR (mean ± std over finished seeds), diverged LRs as x at the top;
* ``_vs_<field>.png`` final metric vs a grid field's value (e.g. test MSE vs severity), mean ± std bars;
* ``_expert_load.png`` for runs that logged eval series ``expert_load/L{layer}/E{expert}`` (MoE): the fraction
  of routed tokens per expert and layer at the last evaluation, one heat map per recipe, and the load's
  coefficient of variation over training.

Across everything: ``performance_profile.png``, a Dolan–Moré profile over (domain, preset, config, seed)
problems, each recipe at its best LR on each problem.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from benchmarks import telemetry  # noqa: E402
from benchmarks.frame import StudyGroup, at_best_lr, file_stem, study_groups  # noqa: E402
from benchmarks.stats import performance_ratio, summarize  # noqa: E402
from benchmarks.store import Curve, Store  # noqa: E402

MAX_PANELS = 6
EXPERT_LOAD = re.compile(r"expert_load/L(\d+)/E(\d+)$")
DIVERGED_STYLE = dict(marker="x", color="red", markersize=9, linestyle="none")  # x marks a divergence


def write_plots(frame: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    """Write every plot for the runs in ``frame``; returns the paths written."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for group in study_groups(frame):
        stem = folder / file_stem(f"{group.study}_{group.domain}_{group.preset}")
        written += _save(plot_training_curves(group, store), stem.with_name(stem.name + "_loss.png"))
        written += _save(plot_grad_norms(group, store), stem.with_name(stem.name + "_grad_norm.png"))
        written += _save(plot_lr_sensitivity(group), stem.with_name(stem.name + "_lr.png"))
        for field in group.grid_fields:
            written += _save(plot_metric_vs_field(group, field), stem.with_name(stem.name + f"_vs_{file_stem(field)}.png"))
        written += _save(plot_expert_load(group, store), stem.with_name(stem.name + "_expert_load.png"))
    written += _save(plot_performance_profile(frame), folder / "performance_profile.png")
    return written


def _save(figure, path: Path) -> list[Path]:
    if figure is None:
        return []
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return [path]


def _colors(labels) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _panels(group: StudyGroup, title: str, sharey: bool = False):
    columns = list(dict.fromkeys(group.column_key(c) for c in group.runs["config"]))
    shown = columns[:MAX_PANELS]
    figure, axes = plt.subplots(1, len(shown), figsize=(5.2 * len(shown), 4.2), squeeze=False, sharey=sharey,
                                layout="constrained")
    more = f" (first {MAX_PANELS} of {len(columns)} grid points)" if len(columns) > len(shown) else ""
    figure.suptitle(f"{title} — study {group.study}{more}\n{group.describe()}", fontsize=9)
    return figure, dict(zip(shown, axes[0]))


def _mean_curve(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray]:
    steps = np.concatenate([c.steps for c in curves])
    values = np.concatenate([c.values for c in curves])
    keep = np.isfinite(values)
    unique, index = np.unique(steps[keep], return_inverse=True)
    sums = np.bincount(index, weights=values[keep], minlength=len(unique))
    counts = np.bincount(index, minlength=len(unique))
    return unique, sums / counts


def _curve_cells(group: StudyGroup):
    """(grid column, legend label, runs) for curve plots; a label whose LR was swept shows its best LR only."""
    runs = group.runs
    for (column, label), cell in runs.groupby([runs["config"].map(group.column_key), "label"], sort=True):
        if group.lr_swept(label):
            cell = at_best_lr(cell)
            yield column, label, f"{label} (best lr={cell.iloc[0]['lr']:g})", cell
        else:
            yield column, label, label, cell


def plot_training_curves(group: StudyGroup, store: Store):
    """Training loss vs step (mean over seeds, smoothed) per row label, one panel per grid point."""
    runs = group.runs
    curves = store.curves_named("train", "loss", runs["run_id"])
    if not curves:
        return None
    figure, panels = _panels(group, "Training loss")
    colors = _colors(set(runs["label"]))
    for column, label, legend, cell in _curve_cells(group):
        ax = panels.get(column)
        found = [curves[i] for i in cell["run_id"] if i in curves and len(curves[i].steps)]
        if ax is None or not found:
            continue
        steps, mean = _mean_curve(found)
        smoothed = telemetry.smooth(mean, max(1, len(mean) // 50))
        ax.plot(steps, smoothed, color=colors[label], label=f"{legend} (n={len(found)})", linewidth=1.2)
        for run_id in cell.loc[cell["status"] == "diverged", "run_id"]:
            if run_id in curves and len(curves[run_id].steps):
                curve = curves[run_id]
                ax.plot(curve.steps[-1:], np.clip(curve.values[-1:], None, np.nanmax(smoothed) * 10),
                        **{**DIVERGED_STYLE, "color": colors[label]})
    for column, ax in panels.items():
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        if ax.lines and all(np.nanmin(line.get_ydata()) > 0 for line in ax.lines):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    return figure


def plot_grad_norms(group: StudyGroup, store: Store):
    """Gradient norm (before the optimizer's transforms) of the first seed per row label, spikes marked."""
    runs = group.runs
    curves = store.curves_named("train", "grad_norm_before", runs["run_id"])
    if not curves:
        return None
    figure, panels = _panels(group, f"Gradient norm (spikes: z > {telemetry.SPIKE_THRESHOLD:g} over "
                                    f"{telemetry.SPIKE_WINDOW} steps)")
    colors = _colors(set(runs["label"]))
    for column, label, legend, cell in _curve_cells(group):
        ax = panels.get(column)
        first = next((curves[i] for i in cell.sort_values("seed")["run_id"] if i in curves), None)
        if ax is None or first is None:
            continue
        spikes = telemetry.spike_steps(first.steps, first.values)
        ax.plot(first.steps, first.values, color=colors[label], linewidth=0.8, alpha=0.8,
                label=f"{legend} ({len(spikes)} spikes)")
        ax.plot(spikes, first.values[np.isin(first.steps, spikes)], "o", color=colors[label], markersize=4)
    for column, ax in panels.items():
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("gradient norm (first seed)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    return figure


def plot_lr_sensitivity(group: StudyGroup):
    """Final metric vs LR per recipe (mean ± std over finished seeds); diverged LRs as red x at the top."""
    runs = group.runs
    swept = [label for label in set(runs["label"]) if group.lr_swept(label)]
    if not swept:
        return None
    metric = runs.iloc[0]["metric"]
    figure, panels = _panels(group, f"LR sensitivity of {metric}")
    colors = _colors(set(runs["label"]))
    heights = {label: 0.96 - 0.07 * i for i, label in enumerate(sorted(swept))}
    for (column, label), cell in runs[runs["label"].isin(swept)].groupby([runs["config"].map(group.column_key), "label"]):
        ax = panels.get(column)
        if ax is None:
            continue
        points = []
        for lr, at_lr in cell.groupby("lr"):
            summary = summarize(at_lr.loc[at_lr["status"] == "finished", "metric_value"])
            points.append((lr, summary.mean, 0.0 if math.isnan(summary.std) else summary.std,
                           (at_lr["status"] == "diverged").sum()))
        lrs, means, stds, diverged = map(np.asarray, zip(*sorted(points)))
        ax.errorbar(lrs, means, yerr=stds, color=colors[label], marker="o", capsize=3, label=label)
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for lr, count in zip(lrs, diverged):
            if count:
                ax.plot([lr], [heights[label]], transform=top, **{**DIVERGED_STYLE, "color": colors[label]})
                ax.annotate(f"{count} div", (lr, heights[label]), xycoords=top, xytext=(6, -3),
                            textcoords="offset points", fontsize=6, color=colors[label])
    for column, ax in panels.items():
        ax.set_title(column, fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel(f"final {metric}")
        ax.legend(fontsize=7)
    return figure


def plot_metric_vs_field(group: StudyGroup, field: str):
    """Final metric vs the value of grid ``field``, mean ± std over finished seeds; one line per recipe label
    (and per value of any other grid field); a label whose LR was swept is taken at its best LR per point."""
    others = [f for f in group.grid_fields if f != field]
    runs = group.runs.assign(
        value=[c.get(field) for c in group.runs["config"]],
        line=[label + "".join(f", {f}={c.get(f)}" for f in others) for label, c in zip(group.runs["label"],
                                                                                    group.runs["config"])])
    values = sorted(set(runs["value"]), key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    position = {v: (v if numeric else i) for i, v in enumerate(values)}
    metric = runs.iloc[0]["metric"]
    figure, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    figure.suptitle(f"{metric} vs {field} — study {group.study}\n{group.describe()}", fontsize=9)
    colors = _colors(set(runs["label"]))
    for line, cell in runs.groupby("line"):
        label = cell.iloc[0]["label"]
        swept = group.lr_swept(label)
        xs, means, stds = [], [], []
        for value in values:
            at = cell[cell["value"].map(lambda v: v == value)]
            if swept and len(at):
                at = at_best_lr(at)
            summary = summarize(at.loc[at["status"] == "finished", "metric_value"])
            if summary.n:
                xs.append(position[value])
                means.append(summary.mean)
                stds.append(0.0 if math.isnan(summary.std) else summary.std)
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colors[label],
                        label=line + (" (best LR)" if swept else ""))
    if not numeric:
        ax.set_xticks(list(position.values()), [str(v) for v in values])
    ax.set_xlabel(field)
    ax.set_ylabel(f"final {metric} (mean ± std)")
    ax.legend(fontsize=7)
    return figure


def final_expert_load(store: Store, run_ids) -> tuple[np.ndarray, int] | None:
    """Mean over ``run_ids`` of the ``(layers, experts)`` load matrix at each run's last evaluation, and the
    last evaluation step; None when none of them logged ``expert_load/L*/E*`` series."""
    ids = list(run_ids)
    cells = {name: EXPERT_LOAD.match(name) for name in store.curve_names("eval", ids, "expert_load/")}
    cells = {name: (int(m[1]), int(m[2])) for name, m in cells.items() if m}
    if not cells:
        return None
    layers, experts = (max(index[i] for index in cells.values()) + 1 for i in (0, 1))
    sums, counts, last = np.zeros((layers, experts)), np.zeros((layers, experts)), 0
    for name, (layer, expert) in cells.items():
        for _, curve in store.iter_curves("eval", name, ids):
            if len(curve.values) and np.isfinite(curve.values[-1]):
                sums[layer, expert] += curve.values[-1]
                counts[layer, expert] += 1
                last = max(last, int(curve.steps[-1]))
    if not counts.any():
        return None
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0), last


def plot_expert_load(group: StudyGroup, store: Store):
    """MoE routing balance: per recipe label (at its best LR; first grid points), a heat map of the fraction of
    top-k assignments per expert (columns) and layer (rows) at the last evaluation, mean over the finished
    seeds, coloured around the uniform load 1/experts; and, when logged, the mean per-layer coefficient of
    variation of the load (``load_cv_mean``) over the evaluations, mean over seeds."""
    runs = group.runs
    finished = runs[runs["status"] == "finished"]
    if finished.empty or not store.curve_names("eval", finished["run_id"], "expert_load/"):
        return None
    maps = []
    for column, label, legend, cell in _curve_cells(group):
        loaded = final_expert_load(store, cell.loc[cell["status"] == "finished", "run_id"])
        if loaded is not None:
            maps.append((column, label, legend, cell, *loaded))
    maps = maps[:MAX_PANELS]
    if not maps:
        return None
    cv_curves = store.curves_named("eval", "load_cv_mean", finished["run_id"])
    panels = len(maps) + bool(cv_curves)
    figure, axes = plt.subplots(1, panels, figsize=(4.8 * panels, 4.2), squeeze=False, layout="constrained")
    figure.suptitle(f"Expert load (fraction of top-k assignments) — study {group.study}\n{group.describe()}",
                    fontsize=9)
    highest = max(float(np.nanmax(load)) for *_, load, _ in maps)
    for ax, (column, label, legend, cell, load, step) in zip(axes[0], maps):
        uniform = 1.0 / load.shape[1]
        image = ax.imshow(load, cmap="RdBu_r", aspect="auto",
                          norm=TwoSlopeNorm(vcenter=uniform, vmin=0.0, vmax=max(highest, 2 * uniform)))
        if load.size <= 256:
            for (layer, expert), value in np.ndenumerate(load):
                ax.text(expert, layer, f"{value:.2f}", ha="center", va="center", fontsize=6)
        n = int((cell["status"] == "finished").sum())
        where = "" if column == "all" else f"{column}\n"
        ax.set_title(f"{where}{legend}, step {step} (n={n})", fontsize=8)
        ax.set_xlabel("expert")
        ax.set_ylabel("layer")
        ax.set_xticks(range(load.shape[1]))
        ax.set_yticks(range(load.shape[0]))
        figure.colorbar(image, ax=ax, shrink=0.8, label=f"fraction (uniform = {uniform:.3g})")
    if cv_curves:
        ax = axes[0][-1]
        colors = _colors(set(runs["label"]))
        for column, label, legend, cell in _curve_cells(group):
            found = [cv_curves[i] for i in cell["run_id"] if i in cv_curves and len(cv_curves[i].steps)]
            if found:
                steps, mean = _mean_curve(found)
                suffix = "" if column == "all" else f" [{column}]"
                ax.plot(steps, mean, marker="o", color=colors[label], label=f"{legend}{suffix} (n={len(found)})")
        ax.set_title("load imbalance during training", fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("coefficient of variation of the load (mean over layers)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    return figure


def profile_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Performance ratios, one row per problem (domain, preset, config, seed), one column per recipe label.

    Each label is taken at its best LR on the problem (a label with no finished run there has ratio inf);
    problems with fewer than two labels are dropped; a label not run on a problem is NaN there.
    """
    rows = []
    for (domain, preset, _, seed), problem in frame.groupby(["domain", "preset", "config_key", "seed"]):
        higher = bool(problem.iloc[0]["higher_is_better"])
        best = {}
        for label, runs in problem.groupby("label"):
            finished = runs.loc[runs["status"] == "finished", "metric_value"].dropna()
            best[label] = (finished.max() if higher else finished.min()) if len(finished) else math.nan
        if len(best) >= 2:
            rows.append({"domain": domain, "preset": preset, "seed": seed, **performance_ratio(best, higher)})
    return pd.DataFrame(rows)


def plot_performance_profile(frame: pd.DataFrame):
    """Dolan–Moré profile: fraction of problems on which each recipe is within a factor tau of the best."""
    if frame.empty:
        return None
    ratios = profile_ratios(frame)
    if ratios.empty:
        return None
    labels = [c for c in ratios.columns if c not in ("domain", "preset", "seed")]
    finite = ratios[labels].replace(np.inf, np.nan).stack()
    tau_max = max(2.0, float(finite.max()) * 1.1) if len(finite) else 2.0
    taus = np.geomspace(1.0, tau_max, 400)
    figure, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    colors = _colors(labels)
    for label in labels:
        r = ratios[label].dropna().to_numpy()
        if len(r):
            ax.step(taus, [(r <= t).mean() for t in taus], where="post", color=colors[label],
                    label=f"{label} ({len(r)} problems)")
    budgets = frame.groupby(["domain", "preset"])["budget"].max()
    domains = ", ".join(f"{d} ({p}, {budgets.get((d, p), '?')} steps)"
                        for d, p in sorted(set(zip(ratios["domain"], ratios["preset"]))))
    figure.suptitle(f"Performance profile over {len(ratios)} problems (domain, config, seed)\n"
                    f"each recipe at its best LR; domains: {domains}", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("tau (ratio to the best recipe on the problem)")
    ax.set_ylabel("fraction of problems with ratio <= tau")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    return figure

