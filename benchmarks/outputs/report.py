"""``OUT/report.md`` and the one function that rebuilds every output from the store alone.

The report is a list of sections, each a function from what was computed to Markdown lines
(:func:`render_report`); a new section is one more function in that list.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmarks.analysis import profile, regime
from benchmarks.analysis.frame import StudyGroup, at_best_lr, file_stem, runs_frame, study_groups
from benchmarks.analysis.inference import ALPHA, MIN_SEEDS
from benchmarks.analysis.stats import summarize
from benchmarks.audit import ClaimResult, audit
from benchmarks.audit.auditor import PERF_FILE
from benchmarks.audit.verdicts import result_text
from benchmarks.outputs import plots, summary, tables
from benchmarks.protocol.claims import CLAIMS
from benchmarks.store import Store

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"  # the committed reference results


def build_outputs(out: str | Path, reference: Path | None = REFERENCE) -> list[Path]:
    """Rebuild ``runs.csv``, ``tables/``, ``plots/`` and ``report.md`` from ``OUT/runs.sqlite`` (and the
    optimizer-step benchmark's ``OUT/perf/optimizer_step.json`` for C14, when it is there).

    The claims audit reads the committed reference results (``reference``, when it holds a store and is not
    ``out`` itself) together with this store's runs of the presets the reference ran, so a ``quick`` run does not
    grade the paper's claims on its own; the report says which runs the audit used."""
    out = Path(out)
    with Store.open_existing(out / "runs.sqlite") as store:
        frame = regime.attach_baselines(runs_frame(store))
        written = tables.write_runs_csv(frame.drop(columns=["baselines"], errors="ignore"), out)
        checkpoints = {(g.study, g.domain, g.preset): tables.checkpoint_pivot(g, store) for g in study_groups(frame)}
        written += tables.write_study_tables(frame, out, checkpoints)
        written += plots.write_plots(frame, store, out)
        perf_file = out / PERF_FILE
        perf = json.loads(perf_file.read_text()) if perf_file.is_file() else None
        environments = {run_id: store.environment(run_id) for run_id in frame.get("run_id", [])}
        claims_frame, claims_store, source = frame, store, None
        reference_store = _reference_store(out, reference)
        if reference_store is not None:
            with reference_store:
                reference_frame = regime.attach_baselines(runs_frame(reference_store))
                claims_frame, source = _with_matching_runs(reference_frame, frame), shown_path(reference)
                claims_store = _CurvesFrom(reference_store, store)
                if perf is None and (reference / PERF_FILE).is_file():
                    perf = json.loads((reference / PERF_FILE).read_text())
                results = audit(claims_frame, claims_store, CLAIMS, perf)
        else:
            results = audit(claims_frame, claims_store, CLAIMS, perf)
    report = out / "report.md"
    report.write_text(render_report(frame, results, environments, out, checkpoints,
                                    claims_source=source, claims_runs=len(claims_frame)), encoding="utf-8")
    return written + [report]


def _reference_store(out: Path, reference: Path | None) -> Store | None:
    """The reference store, when there is one and ``out`` is not the reference folder itself."""
    if reference is None or not (reference / "runs.sqlite").is_file():
        return None
    if (reference / "runs.sqlite").resolve() == (out / "runs.sqlite").resolve():
        return None
    return Store.open_existing(reference / "runs.sqlite")


def _with_matching_runs(reference: pd.DataFrame, own: pd.DataFrame) -> pd.DataFrame:
    """The reference runs plus this store's runs of a (domain, preset) the reference ran (a study's grid)."""
    if own.empty or reference.empty:
        return reference
    ran = set(zip(reference["domain"], reference["preset"]))
    matching = own[[(d, p) in ran for d, p in zip(own["domain"], own["preset"])]]
    matching = matching[~matching["run_id"].isin(reference["run_id"])]
    return pd.concat([reference, matching], ignore_index=True) if len(matching) else reference


class _CurvesFrom:
    """The audit's view of two stores: curves are looked up in the first, then the second."""

    def __init__(self, *stores: Store):
        self.stores = stores

    def curves_named(self, kind: str, name: str, run_ids):
        """Curves ``kind/name`` of ``run_ids`` from whichever store holds each run."""
        found = {}
        for store in self.stores:
            missing = [run_id for run_id in run_ids if run_id not in found]
            if missing:
                found.update(store.curves_named(kind, name, missing))
        return found


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else ``OUT`` (never absolute)."""
    try:
        relative = os.path.relpath(Path(path).resolve(), Path.cwd())
    except ValueError:
        return "OUT"
    return "OUT" if relative.startswith("..") or os.path.isabs(relative) else relative


def render_report(frame: pd.DataFrame, results: list[ClaimResult], environments: dict[str, dict], out: Path,
                  checkpoints: dict[tuple[str, str, str], tables.Pivot | None] | None = None,
                  claims_source: str | None = None, claims_runs: int | None = None) -> str:
    """The report's Markdown: a summary of this store's runs (best recipe per condition, margin, regime, trust),
    overview (with the code version of each domain's runs), claims audit (from ``claims_source``'s reference
    results when given), per-study scale, baselines, tables and plots, "what this does not show", telemetry,
    profiles, failures."""
    if not frame.empty and "baselines" not in frame:
        frame = regime.attach_baselines(frame)
    lines = ["# Stable-SPAM benchmark report", "",
             f"Built {datetime.now(timezone.utc).isoformat(timespec='seconds')} from `runs.sqlite` "
             f"({len(frame)} runs). Rebuild with `python run_all.py report --out {shown_path(out)}`.", ""]
    lines += [summary.run_summary(frame, regime=regime.condition_regime)]
    lines += _overview(frame, environments)
    lines += _claims_section(results, claims_source, claims_runs)
    lines += _studies_section(frame, out, checkpoints or {})
    lines += _profiles_section(frame)
    lines += _failures_section(frame)
    return "\n".join(lines) + "\n"


def _overview(frame: pd.DataFrame, environments: dict[str, dict]) -> list[str]:
    if frame.empty:
        return ["No runs in the store yet.", ""]
    counts = frame["status"].value_counts()
    lines = ["## Overview", "", "| status | runs |", "|---|---|"]
    lines += [f"| {status} | {counts.get(status, 0)} |" for status in ("finished", "diverged", "failed")]
    lines += ["", "| domain | preset | recipes | seeds | runs | code (git commit) |", "|---|---|---|---|---|---|"]
    dirty_domains = []
    for (domain, preset), runs in frame.groupby(["domain", "preset"]):
        envs = [environments.get(run_id, {}) for run_id in runs["run_id"]]
        commits = sorted({(e.get("git_commit") or "?")[:10] + (" **DIRTY**" if e.get("git_dirty") else "")
                          for e in envs})
        if any(e.get("git_dirty") for e in envs):
            dirty_domains.append(f"{domain} ({preset})")
        lines.append(f"| {domain} | {preset} | {', '.join(sorted(set(runs['label'])))} | {runs['seed'].nunique()} "
                     f"| {len(runs)} | {', '.join(commits)} |")
    machines = sorted({f"{e.get('hostname')}: {e.get('gpu') or e.get('cpu')} ({e.get('device')})"
                       for e in environments.values()})
    torches = sorted({str(e.get("torch")) for e in environments.values()})
    lines += [""]
    if dirty_domains:
        lines += [f"> **WARNING: runs of {', '.join(dirty_domains)} come from a working tree with uncommitted "
                  f"changes (`DIRTY`): the commit shown is not the code that ran them, and they cannot be "
                  f"reproduced from it.**", ""]
    lines += [f"torch {', '.join(torches)}.", "", "Machines: " + "; ".join(machines) + ".", ""]
    return lines


VOCABULARY = (
    "Verdicts: **reproduced** (every part the claim speaks of ran, in regime, with >= {seeds} seeds per arm, and "
    "passes after Holm's correction over the whole audit); **not reproduced** (a part in regime is significantly "
    "contradicted); **partially run (k of m)**; **premise absent** (the claim presumes 4-bit hurts Adam, and at "
    "this scale 4-bit Adam is not significantly worse than 16-bit Adam); **regime not reached** (a cell did not "
    "beat the domain's trivial baselines by {margin:.0%}, or its regime is unknown); **underpowered** (fewer "
    "than {seeds} seeds per arm, or too little power for the paper's effect at the observed spread); "
    "**inconclusive**; **not run**. Tests: paired t on seed-matched arms, Welch t otherwise, and where t is "
    "undefined (every seed's difference equal) the exact sign or permutation test (LR sensitivity: "
    "paired seed bootstrap with the best LR re-picked); alpha = {alpha}; every p is shown raw and Holm-adjusted.")


def _claims_section(results: list[ClaimResult], source: str | None = None, runs: int | None = None) -> list[str]:
    where = "the runs in this store" if source is None else (
        f"the committed reference results in `{source}` plus this store's runs of the presets they ran "
        f"({runs} runs in all), not only the runs summarised above")
    lines = ["## Claims about the paper" if source else "## Claims audit", "",
             f"Each claim of the paper (SPEC §4) checked against {where}, at the scale that was run "
             "(claims: `benchmarks/protocol/claims.py`; rules: `benchmarks/audit/`). Quoted numbers come from the "
             "paper version named in the source column (arXiv: Tables 1-7, Figs 1-9; review: Tables 10-13; "
             "thesis: Tables 4.2/4.3).", "",
             VOCABULARY.format(seeds=MIN_SEEDS, margin=regime.MARGIN, alpha=ALPHA), "",
             "| claim | source | verdict | why |", "|---|---|---|---|"]
    for result in results:
        lines.append(f"| **{result.id}** {result.claim} | {result.source} | **{result.verdict}** | {result.why} |")
    lines.append("")
    for result in results:
        lines += [f"### {result.id}: {result.verdict}", "", result.claim + ".", "", f"Why: {result.why}.", ""]
        if result.source:
            lines += [f"Source: {result.source}.", ""]
        if result.parts:
            ran = result.ran_parts
            lines += [f"Parts ({len(ran)} of {len(result.parts)} ran): " + ", ".join(
                f"{p} {'(ran)' if p in ran else '(not run)'}" for p in result.parts) + ".", ""]
        if result.note:
            lines += [f"_{result.note}_", ""]
        for check in result.checks:
            regime_text = {True: "in regime", False: "out of regime", None: "regime unknown"}[check.in_regime]
            lines.append(f"- [{check.part}] {check.what}: **{check.outcome}** ({regime_text}) — {result_text(check)}"
                         f"; {check.numbers}")
        if result.premise is not None:
            p = result.premise
            lines.append(f"- premise: {p.what}: **{p.outcome}** — {result_text(p)}; {p.numbers}")
        lines.append("")
    return lines


def _scale(group: StudyGroup) -> str:
    runs = group.runs
    info = [i for i in runs["info"] if isinstance(i, dict)]
    params = sorted({int(i["parameters"]) for i in info if isinstance(i.get("parameters"), (int, float))})
    budgets = sorted({int(b) for b in runs["budget"].dropna()})
    unit = runs.iloc[0]["budget_unit"] or "steps"
    parts = []
    if params:
        parts.append("parameters " + "/".join(f"{p:,}" for p in params))
    if budgets:
        parts.append(f"{'/'.join(f'{b:,}' for b in budgets)} {unit}")
    config = runs.iloc[0]["config"]
    if budgets and all(k in config for k in ("batch_size", "seq_len")) and "optimizer" in unit:
        tokens = budgets[-1] * int(config["batch_size"]) * int(config["seq_len"])
        parts.append(f"{tokens:,} training tokens")
    parts.append(f"{runs['seed'].nunique()} seed(s) per cell at most, {len(runs)} runs")
    return "Scale: " + ", ".join(parts) + "."


def _baselines_lines(group: StudyGroup) -> list[str]:
    table = regime.baselines_table(group.runs)
    if table.empty:
        return ["Baselines: none stored or computable (regime unknown).", ""]
    lines = ["Trivial baselines on the same evaluation data (mean over seeds; gating ones marked *): "]
    for key, rows in table.groupby("config_key", sort=True):
        config = json.loads(key)
        where = group.column_key(config)
        values = ", ".join(f"{r.baseline}{'*' if r.gates else ''} {r.value:.4g}" for r in rows.itertuples())
        lines.append(f"- {where}: {values}")
    return lines + [""]


def _does_not_show(group: StudyGroup) -> list[str]:
    runs = group.runs
    out, unknown = [], []
    for key, cell in runs.groupby(["label", "config_key"], sort=True):
        state, text = regime.cell_regime(regime_best(cell))
        where = f"{key[0]} at {group.column_key(cell.iloc[0]['config'])}"
        if state is False:
            fix = _variant_note(runs, cell) or _regime_note(group.domain, cell.iloc[0]["config"])
            out.append(f"{where} ({text}{'; what would fix it: ' + fix if fix else ''})")
        elif state is None:
            unknown.append(where)
    lines = []
    if out:
        lines.append(f"What this does not show: {len(out)} cell(s) are out of regime, so their ranking says nothing "
                     f"about optimizers in a trained regime: " + "; ".join(out) + ".")
    if unknown:
        lines.append(f"Regime unknown (no baselines) for: {', '.join(unknown)}.")
    lines.append("Nor does any of it show behaviour at the paper's scale (its models have 60M-1B parameters and "
                 "train on billions of tokens); see the scale line above.")
    return lines + [""]


def _variant_note(runs: pd.DataFrame, cell: pd.DataFrame) -> str:
    """For a recipe run with a moved hyper-parameter (a variant, as in the ``hparams`` study) whose default is in
    regime at the same config: the moved hyper-parameter is what leaves the cell out, not the scale ("" otherwise)."""
    first = cell.iloc[0]
    if not first["variant"]:
        return ""
    base = runs[(runs["recipe"] == first["recipe"]) & (runs["variant"] == "")
                & (runs["config_key"] == first["config_key"])]
    if base.empty or regime.cell_regime(regime_best(base))[0] is not True:
        return ""
    return (f"{first['recipe']}'s own hyper-parameters ({first['recipe']} is in regime at the same config): the moved "
            f"{first['variant']} is what leaves this cell out, a finding about that setting, not about the scale")


def _regime_note(domain: str, config: dict) -> str:
    """The domain's one-line note on what scale would put an out-of-regime cell in regime ("" if none)."""
    adapter = regime.registered(domain)
    return adapter.regime_note(config) if adapter is not None else ""


def regime_best(cell: pd.DataFrame) -> pd.DataFrame:
    """A cell's runs at its best LR (an LR sweep is judged where the recipe does best)."""
    return at_best_lr(cell)


def _profiles_section(frame: pd.DataFrame) -> list[str]:
    lines = profile.markdown(frame)
    if not lines:
        return []
    return ["## Performance profiles, one per domain", ""] + lines


def _studies_section(frame: pd.DataFrame, out: Path, checkpoints: dict) -> list[str]:
    lines = ["## Studies", ""]
    for group in study_groups(frame):
        pivot = tables.pivot(group)
        stem = file_stem(f"{group.study}_{group.domain}_{group.preset}")
        table_stem = file_stem(group.study + "_" + group.domain)
        lines += [_scale(group), ""] + _baselines_lines(group)
        lines += [tables.to_markdown([pivot]), f"Table files: `tables/{table_stem}.md`, `.tex`.", ""]
        lines += _does_not_show(group)
        at_checkpoints = checkpoints.get((group.study, group.domain, group.preset))
        if at_checkpoints is not None:
            lines += [tables.to_markdown([at_checkpoints]), f"Table files: `tables/{table_stem}_checkpoints.md`, `.tex`.", ""]
        lines += [f"![{p.name}](plots/{p.name})" for p in sorted((out / "plots").glob(f"{stem}_*.png"))]
        lines += ["", _telemetry_table(group.runs), ""]
    return lines


def _telemetry_table(runs: pd.DataFrame) -> str:
    metric = runs.iloc[0]["metric"]
    rows = [f"| recipe | grad-norm spikes | loss spikes | mean {metric} over training (eval-curve area) "
            f"| wall time (s) |", "|---|---|---|---|---|"]
    for label, at in runs.groupby("label"):
        cells = []
        for column in ("grad_norm_spikes", "loss_spikes", "eval_area", "wall_seconds"):
            s = summarize(at[column])
            cells.append("—" if s.n == 0 else f"{s.mean:.3g} (n={s.n})")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "Telemetry (spikes: z > 5 against the previous 100 steps):\n\n" + "\n".join(rows)


def _failures_section(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    failed = frame[frame["status"] == "failed"]
    diverged = frame[frame["status"] == "diverged"]
    lines = []
    if len(diverged):
        lines += ["## Diverged runs", "", "| domain | recipe | lr | seed | step | reason |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.domain} | {r.label} | {_lr(r.lr)} | {r.seed} | {r.diverged_step} | {r.error} |"
                  for r in diverged.itertuples()]
        lines.append("")
    if len(failed):
        lines += ["## Failed runs", "", "Re-run them with `--retry-failed`; tracebacks are in `runs.sqlite`.", "",
                  "| run | domain | recipe | seed | error |", "|---|---|---|---|---|"]
        lines += [f"| {r.run_id} | {r.domain} | {r.label} | {r.seed} | {r.error} |" for r in failed.itertuples()]
        lines.append("")
    return lines


def _lr(value) -> str:
    return "—" if value is None or value != value else f"{value:g}"
