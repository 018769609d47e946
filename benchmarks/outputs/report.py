"""``OUT/report.md`` and the one function that rebuilds every output from the store alone."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmarks.analysis.frame import file_stem, runs_frame, study_groups
from benchmarks.analysis.stats import summarize
from benchmarks.audit import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, ClaimResult, audit
from benchmarks.outputs import plots, tables
from benchmarks.protocol.claims import CLAIMS
from benchmarks.store import Store


def build_outputs(out: str | Path) -> list[Path]:
    """Rebuild ``runs.csv``, ``tables/``, ``plots/`` and ``report.md`` from ``OUT/runs.sqlite``."""
    out = Path(out)
    with Store.open_existing(out / "runs.sqlite") as store:
        frame = runs_frame(store)
        written = tables.write_runs_csv(frame, out)
        checkpoints = {(g.study, g.domain, g.preset): tables.checkpoint_pivot(g, store) for g in study_groups(frame)}
        written += tables.write_study_tables(frame, out, checkpoints)
        written += plots.write_plots(frame, store, out)
        results = audit(frame, store, CLAIMS)
        environments = [store.environment(run_id) for run_id in frame.get("run_id", [])]
    report = out / "report.md"
    report.write_text(render_report(frame, results, environments, out, checkpoints), encoding="utf-8")
    return written + [report]


def render_report(frame: pd.DataFrame, results: list[ClaimResult], environments: list[dict], out: Path,
                  checkpoints: dict[tuple[str, str, str], tables.Pivot | None] | None = None) -> str:
    """The report's Markdown: overview, claims audit, per-study tables (with the checkpoint table of a
    (study, domain, preset) in ``checkpoints``) and plots, telemetry, failures."""
    lines = ["# Stable-SPAM benchmark report", "",
             f"Built {datetime.now(timezone.utc).isoformat(timespec='seconds')} from `runs.sqlite` "
             f"({len(frame)} runs). Rebuild with `python run_all.py report --out {out}`.", ""]
    lines += _overview(frame, environments)
    lines += _claims_section(results)
    lines += _studies_section(frame, out, checkpoints or {})
    lines += _failures_section(frame)
    return "\n".join(lines) + "\n"


def _overview(frame: pd.DataFrame, environments: list[dict]) -> list[str]:
    if frame.empty:
        return ["No runs in the store yet.", ""]
    counts = frame["status"].value_counts()
    lines = ["## Overview", "", "| status | runs |", "|---|---|"]
    lines += [f"| {status} | {counts.get(status, 0)} |" for status in ("finished", "diverged", "failed")]
    lines += ["", "| domain | preset | recipes | seeds | runs |", "|---|---|---|---|---|"]
    for (domain, preset), runs in frame.groupby(["domain", "preset"]):
        lines.append(f"| {domain} | {preset} | {', '.join(sorted(set(runs['label'])))} | {runs['seed'].nunique()} "
                     f"| {len(runs)} |")
    commits = sorted({(e.get("git_commit") or "?")[:10] + ("+dirty" if e.get("git_dirty") else "") for e in environments})
    machines = sorted({f"{e.get('hostname')}: {e.get('gpu') or e.get('cpu')} ({e.get('device')})" for e in environments})
    torches = sorted({str(e.get("torch")) for e in environments})
    lines += ["", f"Code: {', '.join(commits)}; torch {', '.join(torches)}.", "",
              "Machines: " + "; ".join(machines) + ".", ""]
    return lines


def _claims_section(results: list[ClaimResult]) -> list[str]:
    lines = ["## Claims audit", "",
             "Each claim of the paper (SPEC §4) checked against the runs in this store, at the scale that was run "
             "(claims: `benchmarks/protocol/claims.py`; rules: `benchmarks/audit/`). `not run` means the store holds "
             "none of the runs the claim needs.",
             "", "| claim | verdict | comparisons |", "|---|---|---|"]
    for result in results:
        tally = ", ".join(f"{sum(c.verdict == v for c in result.comparisons)} {v}"
                          for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
                          if any(c.verdict == v for c in result.comparisons))
        lines.append(f"| **{result.id}** {result.claim} | **{result.verdict}** | {tally or '—'} |")
    lines.append("")
    for result in results:
        if not result.comparisons:
            continue
        lines += [f"### {result.id}: {result.verdict}", "", result.claim + ".", ""]
        if result.source:
            lines += [f"Source: {result.source}.", ""]
        if result.note:
            lines += [f"_{result.note}_", ""]
        lines += [f"- {c.what}: **{c.verdict}** — {c.numbers}" for c in result.comparisons]
        lines.append("")
    return lines


def _studies_section(frame: pd.DataFrame, out: Path, checkpoints: dict) -> list[str]:
    lines = ["## Studies", ""]
    for group in study_groups(frame):
        pivot = tables.pivot(group)
        stem = file_stem(f"{group.study}_{group.domain}_{group.preset}")
        table_stem = file_stem(group.study + "_" + group.domain)
        lines += [tables.to_markdown([pivot]), f"Table files: `tables/{table_stem}.md`, `.tex`.", ""]
        at_checkpoints = checkpoints.get((group.study, group.domain, group.preset))
        if at_checkpoints is not None:
            lines += [tables.to_markdown([at_checkpoints]), f"Table files: `tables/{table_stem}_checkpoints.md`, `.tex`.", ""]
        lines += [f"![{p.name}](plots/{p.name})" for p in sorted((out / "plots").glob(f"{stem}_*.png"))]
        lines += ["", _telemetry_table(group.runs), ""]
    profile = out / "plots" / "performance_profile.png"
    if profile.exists():
        lines += ["## Performance profile across domains", "",
                  "Fraction of problems (domain, config, seed) on which each recipe, at its best LR, is within a "
                  "factor tau of the best recipe.", "", "![performance profile](plots/performance_profile.png)", ""]
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
