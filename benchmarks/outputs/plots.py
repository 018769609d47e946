"""PNG plots under ``OUT/plots/`` (matplotlib), each titled with what was run.

Per (study, domain, preset), file stem ``<study>_<domain>_<preset>``:

* ``_loss.png``       training loss vs step, mean over seeds, one panel per grid point; x = divergence;
* ``_grad_norm.png``  gradient-norm traces (before the optimizer's transforms) of the first seed, spikes dotted;
* ``_lr.png``         final metric vs LR (mean ± std over finished seeds), diverged LRs as x at the top;
* ``_vs_<field>.png`` final metric vs a grid field's value (e.g. test MSE vs severity), mean ± std bars;
* ``_<name>.png``     each share matrix the domain declares (:mod:`benchmarks.outputs.share_matrices`; MoE:
  ``_expert_load.png``, the fraction of routed tokens per expert and layer at the last evaluation, one heat map
  per recipe, and the load's coefficient of variation over training).

Across everything: ``performance_profile.png``, a Dolan–Moré profile over (domain, preset, config, seed)
problems, each recipe at its best LR on each problem.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

from benchmarks.analysis import telemetry
from benchmarks.analysis.frame import StudyGroup, at_best_lr, file_stem, study_groups
from benchmarks.analysis.stats import performance_ratio, summarize
from benchmarks.outputs.degradation import write_degradation_plots
from benchmarks.outputs.figures import DIVERGED_STYLE, colors_for, curve_cells, grid_panels, mean_curve, save
from benchmarks.outputs.share_matrices import declared_share_matrices, plot_share_matrix
from benchmarks.store import Store


def write_plots(frame: pd.DataFrame, store: Store, out: Path) -> list[Path]:
    """Write every plot for the runs in ``frame``; returns the paths written."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    matrices = {domain: declared_share_matrices(domain) for domain in sorted(set(frame.get("domain", ())))}
    for group in study_groups(frame):
        stem = folder / file_stem(f"{group.study}_{group.domain}_{group.preset}")
        written += save(plot_training_curves(group, store), stem.with_name(stem.name + "_loss.png"))
        written += save(plot_grad_norms(group, store), stem.with_name(stem.name + "_grad_norm.png"))
        written += save(plot_lr_sensitivity(group), stem.with_name(stem.name + "_lr.png"))
        for field in group.grid_fields:
            written += save(plot_metric_vs_field(group, field), stem.with_name(stem.name + f"_vs_{file_stem(field)}.png"))
        for matrix in matrices[group.domain]:
            figure = plot_share_matrix(group, store, matrix)
            written += save(figure, stem.with_name(stem.name + f"_{file_stem(matrix.name)}.png"))
    written += write_degradation_plots(frame, out)
    written += save(plot_performance_profile(frame), folder / "performance_profile.png")
    return written


def plot_training_curves(group: StudyGroup, store: Store):
    """Training loss vs step (mean over seeds, smoothed) per row label, one panel per grid point."""
    runs = group.runs
    curves = store.curves_named("train", "loss", runs["run_id"])
    if not curves:
        return None
    figure, panels = grid_panels(group, "Training loss")
    colors = colors_for(set(runs["label"]))
    for column, label, legend, cell in curve_cells(group):
        ax = panels.get(column)
        found = [curves[i] for i in cell["run_id"] if i in curves and len(curves[i].steps)]
        if ax is None or not found:
            continue
        steps, mean = mean_curve(found)
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
    figure, panels = grid_panels(group, f"Gradient norm (spikes: z > {telemetry.SPIKE_THRESHOLD:g} over "
                                    f"{telemetry.SPIKE_WINDOW} steps)")
    colors = colors_for(set(runs["label"]))
    for column, label, legend, cell in curve_cells(group):
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
    figure, panels = grid_panels(group, f"LR sensitivity of {metric}")
    colors = colors_for(set(runs["label"]))
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
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    figure.suptitle(f"{metric} vs {field} — study {group.study}\n{group.describe()}", fontsize=9)
    colors = colors_for(set(runs["label"]))
    lines = sorted(set(runs["line"]))
    for index, (line, cell) in enumerate(runs.groupby("line")):
        label = cell.iloc[0]["label"]
        # Categories (environments, precisions) have no order between them: points, side by side, no line.
        dodge = 0.0 if numeric else (index - (len(lines) - 1) / 2) * min(0.8 / max(len(lines), 1), 0.15)
        swept = group.lr_swept(label)
        xs, means, stds = [], [], []
        for value in values:
            at = cell[cell["value"].map(lambda v: v == value)]
            if swept and len(at):
                at = at_best_lr(at)
            summary = summarize(at.loc[at["status"] == "finished", "metric_value"])
            if summary.n:
                xs.append(position[value] + dodge)
                means.append(summary.mean)
                stds.append(0.0 if math.isnan(summary.std) else summary.std)
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colors[label],
                        linestyle="-" if numeric else "none", label=line + (" (best LR)" if swept else ""))
    if not numeric:
        ax.set_xticks(list(position.values()), [str(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(field)
    ax.set_ylabel(f"final {metric} (mean ± std)")
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
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    colors = colors_for(labels)
    for label in labels:
        r = ratios[label].dropna().to_numpy()
        if len(r):
            ax.step(taus, [(r <= t).mean() for t in taus], where="post", color=colors[label],
                    label=f"{label} ({len(r)} problems)")
    domains = sorted(set(ratios["domain"]))
    figure.suptitle(f"Performance profile: {len(ratios)} problems (domain, config, seed) in {len(domains)} "
                    f"domain(s), each recipe at its best LR", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(1.0, tau_max)
    plain_ticks = FuncFormatter(lambda value, _: f"{value:g}")  # 2, 3, 5 rather than 2x10^0
    ax.xaxis.set_major_formatter(plain_ticks)
    ax.xaxis.set_minor_formatter(plain_ticks)
    ax.set_xlabel("τ (ratio to the best recipe on the problem)")
    ax.set_ylabel("fraction of problems with ratio ≤ τ")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return figure

