"""Calibration of the cpu presets (issue 13): the probe runs that chose them, and how far the committed cells are
from their domains' trivial baselines.

::

    python -m benchmarks.calibration probes [--workers 2]   # run PROBES into results/calibration/ (~35 CPU-minutes)
    python -m benchmarks.calibration probes --probe NAME    # only that probe (repeatable)
    python -m benchmarks.calibration summary                 # results/calibration/probes.json from that store
    python -m benchmarks.calibration regime [--out DIR]      # every cell of a store against its gate, and CPU-hours
    python -m benchmarks.calibration costs [--out DIR]       # the README's cost table (markdown) of that store

A **probe** is one suite of Adam runs (or another recipe's; seed 0, or seeds 0..n-1) at a preset with a few fields
overridden: each asks one question of a preset choice (enough steps? which anomaly scale? a smaller vocabulary?).
Every figure a preset's comment quotes is a :class:`Quote` of a probe: :func:`quoted_figures` reads it back from
``probes.json``, and the tests check that each quote is written in the domain's source and equals the measured
value at the quoted precision. So a preset's numbers come from here, and rerunning the probes after a change shows
whether they still hold.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION_DIR = ROOT / "results" / "calibration"
PROBES_JSON = CALIBRATION_DIR / "probes.json"


@dataclass(frozen=True)
class Quote:
    """A figure written in a preset's comment: ``text`` exactly as written, the value it stands for (``series``:
    a final metric such as ``test_mse`` or ``baseline/bigram``, or ``<eval metric>@<step>``) of the probe run whose
    config has the fields of ``where``."""

    text: str
    series: str
    where: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """``optimizer`` (Adam unless said), seed 0 (seeds ``0..seeds-1``), on ``domain`` at ``preset`` with each field
    of ``sets`` set (several values make a grid), at the policy's LR or at each of ``lrs`` (quotes match these as
    ``lr``). With several seeds a quote stands for the mean over the seeds."""

    name: str
    domain: str
    preset: str
    study: str
    sets: Mapping[str, tuple]
    quotes: tuple[Quote, ...] = ()
    source: str = ""  # the module whose preset comment quotes the figures
    optimizer: str = "adam"
    lrs: tuple[float, ...] | None = None
    seeds: int = 1

    def request(self):
        """The probe as a :class:`~benchmarks.planning.request.SuiteRequest`."""
        from benchmarks.planning.request import OptimizerItem, SuiteRequest

        return SuiteRequest(preset=self.preset, studies=(self.study,), domains=(self.domain,),
                            optimizers=(OptimizerItem(self.optimizer),), lrs=self.lrs, seeds=self.seeds,
                            sets={self.domain: {k: tuple(v) for k, v in self.sets.items()}})


_LLAMA, _MOE, _WEATHER = "domains/llama/domain.py", "domains/moe/domain.py", "domains/weather/domain.py"
_MUJOCO = "domains/mujoco/domain.py"
PROBES: tuple[Probe, ...] = (
    # llama: does the 2048-token vocabulary (the quick preset's data) learn past its bigram in ~1M tokens, and does
    # a 3-bit format cost Adam something at this size?
    Probe("llama-vocab-2048", "llama", "quick", "main",
          {"steps": (800,), "eval_every": (200,), "quant": ("none", "int3")}, source=_LLAMA, quotes=(
              Quote("146.5", "val_ppl@200", {"quant": "none"}), Quote("98.2", "val_ppl@400", {"quant": "none"}),
              Quote("78.3", "val_ppl@600", {"quant": "none"}), Quote("71.1", "val_ppl", {"quant": "none"}),
              Quote("84.5", "baseline/bigram", {"quant": "none"}), Quote("75.7", "val_ppl", {"quant": "int3"}))),
    # moe: on the same data, which CPU size beats the bigram in 1000 steps
    Probe("moe-size", "moe", "cpu", "moe", {"size": ("micro", "mini")}, source=_MOE, quotes=(
        Quote("4.265", "val_loss", {"size": "micro"}), Quote("4.288", "val_loss", {"size": "mini"}),
        Quote("4.445", "baseline/bigram", {"size": "micro"}))),
    # weather: which max the anomaly noise scales with, and how many steps the top severity needs, with S x max
    # read as the noise's standard deviation (anomaly_noise="std", the reading these runs were made with)
    Probe("weather-scale", "weather", "cpu", "severity",
          {"steps": (300,), "eval_every": (0,), "severity": (0.0, 2.0, 5.0), "anomaly_max": ("channel", "window"),
           "anomaly_noise": ("std",)},
          source=_WEATHER, quotes=(
              Quote("0.979", "test_mse", {"severity": 2.0, "anomaly_max": "channel"}),
              Quote("1.034", "test_mse", {"severity": 5.0, "anomaly_max": "channel"}),
              Quote("0.734", "test_mse", {"severity": 2.0, "anomaly_max": "window"}),
              Quote("0.942", "test_mse", {"severity": 5.0, "anomaly_max": "window"}),
              Quote("0.69", "test_mse", {"severity": 0.0, "anomaly_max": "window"}),
              Quote("0.915", "baseline/persistence", {"severity": 0.0, "anomaly_max": "window"}))),
    Probe("weather-steps", "weather", "cpu", "severity",
          {"steps": (1000, 2000), "severity": (5.0,), "anomaly_noise": ("std",)}, source=_WEATHER, quotes=(
              Quote("0.835", "test_mse", {"steps": 1000}), Quote("0.786", "test_mse", {"steps": 2000}))),
    # weather: does the top severity (noise std S x max) get under the gate (0.9x persistence, 0.823) with 2000
    # steps over 10 seeds (the severity study's Adam cell before the variance reading), or with 3000? Adam over 10
    # seeds, Stable-SPAM over 4
    Probe("weather-noise-std", "weather", "cpu", "severity", {"severity": (5.0,), "anomaly_noise": ("std",)},
          source=_WEATHER, seeds=10, quotes=(Quote("0.829", "test_mse"),)),
    *(Probe(f"weather-steps-3000-{recipe}", "weather", "cpu", "severity",
            {"steps": (3000,), "severity": (5.0,), "anomaly_noise": ("std",)},
            source=_WEATHER, optimizer=recipe, seeds=seeds, quotes=(Quote(text, "test_mse"),))
      for recipe, seeds, text in (("adam", 10, "0.831"), ("stable_spam", 4, "0.809"))),
    # weather: S x max read as the noise's variance (the default) at the preset's 2000 steps (Adam also clean)
    Probe("weather-noise-variance-adam", "weather", "cpu", "severity", {"severity": (0.0, 5.0)}, source=_WEATHER,
          quotes=(Quote("0.653", "test_mse", {"severity": 0.0}), Quote("0.706", "test_mse", {"severity": 5.0}))),
    Probe("weather-noise-variance-stable_spam", "weather", "cpu", "severity", {"severity": (5.0,)},
          optimizer="stable_spam", source=_WEATHER, quotes=(Quote("0.698", "test_mse"),)),
    # mujoco: how many PPO steps HalfCheetah and Ant need to beat the untrained policy (evaluations every 50k)
    # (max_grad_norm None = the zoo's 0.5, as these runs were made before the rl study grew its PPO-clip arms: pinned,
    # so the probe keeps its stored runs)
    Probe("mujoco-steps", "mujoco", "cpu", "rl",
          {"env": ("HalfCheetah", "Ant"), "steps": (204_800,), "eval_every": (51_200,), "max_grad_norm": (None,)},
          source=_MUJOCO, quotes=(
              *(Quote(text, f"eval_return@{step}", {"env": "HalfCheetah"}) for text, step in
                (("742.6", 51_200), ("885.9", 102_400), ("1120.6", 153_600), ("1272.1", 204_800))),
              Quote("-0.4", "baseline/untrained_policy", {"env": "HalfCheetah"}),
              Quote("995.5", "baseline/untrained_policy", {"env": "Ant"}),
              Quote("333.2", "eval_return@51200", {"env": "Ant"}), Quote("59.4", "eval_return", {"env": "Ant"}))),
    Probe("weather-lr", "weather", "cpu", "severity",
          {"steps": (1000,), "severity": (5.0,), "peak_lr": (0.002, 0.004), "anomaly_noise": ("std",)},
          source=_WEATHER, quotes=(
              Quote("0.869", "test_mse", {"peak_lr": 0.002}), Quote("1.034", "test_mse", {"peak_lr": 0.004}))),
    # llama: is the `integration` study's Lion (the policy's LR, a fifth of Adam's: 4e-4) out of regime because of
    # its LR? Lion in INT4 above and below it
    Probe("llama-lion-lr", "llama", "cpu", "integration", {"quant": ("int4",)}, optimizer="lion",
          lrs=(1e-4, 2e-4, 1e-3, 2e-3), source="benchmarks/protocol/hparams.py", quotes=tuple(
              Quote(text, "val_ppl", {"lr": lr}) for text, lr in
              (("226.9", 1e-4), ("154.4", 2e-4), ("145.3", 1e-3), ("159.0", 2e-3)))),
)


# --- probes -------------------------------------------------------------------------------------------------

def select_probes(names: list[str] | None) -> tuple[Probe, ...]:
    """The probes named (all when ``names`` is None); an unknown name is a ValueError."""
    if names is None:
        return PROBES
    known = {probe.name: probe for probe in PROBES}
    for name in names:
        if name not in known:
            raise ValueError(f"unknown probe {name!r}; known: {', '.join(known)}")
    return tuple(known[name] for name in names)


def run_probes(out: Path = CALIBRATION_DIR, workers: int | None = None,
               probes: tuple[Probe, ...] = PROBES) -> None:
    """Run ``probes`` (default: all) into ``out/runs.sqlite`` (stored runs are skipped, so this resumes)."""
    from benchmarks.running.plan_runner import run_plan

    for probe in probes:
        print(f"probe {probe.name}", file=sys.stderr, flush=True)
        run_plan(probe.request(), out, workers=workers, outputs=False)


def probe_values(store_dir: Path = CALIBRATION_DIR) -> list[dict[str, Any]]:
    """One entry per finished probe run: probe, config fields the probe sets, final metrics and evaluation points."""
    from benchmarks.planning.expansion import plan_suite
    from benchmarks.store import Store

    with Store.open_existing(store_dir / "runs.sqlite") as store:
        stored = {row["run_id"]: row for row in store.runs() if row["status"] == "finished"}
        entries = []
        for probe in PROBES:
            for spec in plan_suite(probe.request()).specs:
                row = stored.get(spec.run_id)
                if row is None:
                    continue
                values = {k: float(v) for k, v in (row["final_metrics"] or {}).items() if _is_number(v)}
                for (kind, name), curve in store.curves(spec.run_id, "eval").items():
                    values.update({f"{name}@{int(s)}": float(v) for s, v in zip(curve.steps, curve.values)})
                config = {k: row["config"].get(k) for k in probe.sets}
                if probe.lrs:
                    config["lr"] = row["lr"]
                entries.append({"probe": probe.name, "domain": probe.domain, "preset": probe.preset,
                                "config": config, "seed": spec.seed,
                                "run_id": spec.run_id, "seconds": row["wall_seconds"], "values": values})
    return entries


def write_summary(store_dir: Path = CALIBRATION_DIR, path: Path = PROBES_JSON) -> Path:
    """Write :func:`probe_values` to ``path`` (JSON) and return it."""
    path.write_text(json.dumps(probe_values(store_dir), indent=1, sort_keys=True) + "\n")
    return path


def quoted_figures(path: Path = PROBES_JSON) -> list[tuple[Probe, Quote, float | None]]:
    """Every quote of every probe with the measured value it stands for: the one matching run's, or for a probe of
    several seeds the mean over them (None unless every seed of the probe matched exactly once)."""
    entries = json.loads(Path(path).read_text())
    found = []
    for probe in PROBES:
        for quote in probe.quotes:
            matches = [e for e in entries if e["probe"] == probe.name
                       and all(e["config"].get(k) == v for k, v in quote.where.items())]
            values = [e["values"].get(quote.series) for e in matches]
            complete = len(values) == probe.seeds and None not in values
            found.append((probe, quote, sum(values) / len(values) if complete else None))
    return found


def as_quoted(value: float, text: str) -> str:
    """``value`` written with as many decimals as ``text`` has."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:.{decimals}f}"


# --- regime of a store --------------------------------------------------------------------------------------

def regime_table(out: Path, preset: str | None = None) -> pd.DataFrame:
    """Per (domain, preset, config point, recipe at its best LR): runs, mean metric, strongest gating baseline,
    the ratio to it on the gate's scale (perplexity for a loss) and the regime verdict."""
    from benchmarks.analysis import regime
    from benchmarks.analysis.frame import at_best_lr, runs_frame
    from benchmarks.store import Store

    with Store.open_existing(Path(out) / "runs.sqlite") as store:
        frame = runs_frame(store)
    if frame.empty:
        return pd.DataFrame()
    if preset:
        frame = frame[frame["preset"] == preset]
    frame = regime.attach_baselines(frame, compute=False)
    rows = []
    for (domain, point, label), runs in frame.groupby(["domain", "config_key", "label"], sort=True):
        cell = at_best_lr(runs)
        state, text = regime.cell_regime(cell)
        gate = regime.strongest_gate(cell)
        finished = cell.loc[cell["status"] == "finished", "metric_value"].dropna()
        mean = float(finished.mean()) if len(finished) else math.nan
        ratio = math.nan
        if gate is not None and len(finished):
            log = regime.gate_scale(domain) == "log"
            ratio = math.exp(mean - gate[1]) if log else mean / gate[1]
        rows.append({"domain": domain, "preset": cell.iloc[0]["preset"], "config": _short(json.loads(point)),
                     "recipe": label, "lr": cell.iloc[0]["lr"], "runs": len(cell), "finished": len(finished),
                     "metric": mean, "gate": gate[0] if gate else "", "baseline": gate[1] if gate else math.nan,
                     "ratio": ratio, "regime": {True: "in", False: "OUT", None: "?"}[state], "why": text})
    return pd.DataFrame(rows)


def study_costs(out: Path, preset: str | None = None) -> pd.DataFrame:
    """CPU-hours per (domain, preset, study) of the paper's studies at ``preset`` (default: each preset the store
    has) in a store: the stored runs' wall seconds
    summed (each run trains on one torch thread, so with one worker per core its wall time is its CPU time), the
    mean per run, the runs the study plans, those not stored yet, and their estimated cost (at the study's mean per
    run, or the domain's where the study has none stored)."""
    import sqlite3

    with sqlite3.connect(Path(out) / "runs.sqlite") as conn:
        frame = pd.read_sql_query(
            "SELECT s.study, r.run_id, r.domain, r.preset, r.wall_seconds FROM study_runs s JOIN runs r USING(run_id)",
            conn)
    presets = [preset] if preset else sorted(set(frame["preset"]))
    return pd.DataFrame([row for name in presets for row in _preset_costs(frame[frame["preset"] == name], name)])


def _preset_costs(frame: pd.DataFrame, preset: str) -> list[dict[str, Any]]:
    from benchmarks.planning.expansion import plan_suite
    from benchmarks.planning.request import SuiteRequest
    from benchmarks.protocol.studies import PAPER_STUDIES

    stored_ids = set(frame["run_id"])
    domain_minutes = frame.groupby("domain")["wall_seconds"].mean() / 60
    rows = []
    for domain, studies in PAPER_STUDIES.items():
        distinct = {id(by_preset): name for name, by_preset in reversed(list(studies.items()))}  # `main` aliases
        for study in (name for name, by_preset in studies.items()
                      if distinct[id(by_preset)] == name and preset in by_preset):
            runs = frame[(frame["domain"] == domain) & (frame["study"] == study)]
            planned = {spec.run_id for spec in plan_suite(SuiteRequest(
                preset=preset, studies=(study,), domains=(domain,))).specs}
            minutes = runs["wall_seconds"].mean() / 60 if not runs.empty else domain_minutes.get(domain, math.nan)
            to_run = len(planned - stored_ids)
            rows.append({"domain": domain, "preset": preset, "study": study, "runs": len(runs), "planned": len(planned),
                         "stored": len(planned & stored_ids), "to_run": to_run,
                         "cpu_hours": runs["wall_seconds"].sum() / 3600,
                         "minutes_per_run": minutes, "cpu_hours_to_run": to_run * minutes / 60})
    return rows


def cost_table_markdown(costs: pd.DataFrame) -> str:
    """The README's cost table of :func:`study_costs`' rows (one preset), and a line of totals under it."""
    lines = ["| domain | study | runs stored of planned | CPU-hours run | minutes per run | still to run (CPU-hours, "
             "estimate) |", "|---|---|---|---|---|---|"]
    for row in costs.itertuples():
        minutes = f"{row.minutes_per_run:.1f}" + (" (domain's mean)" if row.runs == 0 else "")
        to_run = f"{row.to_run} runs, ~{row.cpu_hours_to_run:.1f}" if row.to_run else "—"
        lines.append(f"| {row.domain} | `{row.study}` | {row.stored} of {row.planned} | {row.cpu_hours:.2f} | "
                     f"{minutes} | {to_run} |")
    return "\n".join(lines + ["", cost_totals(costs)])


def cost_totals(costs: pd.DataFrame) -> str:
    """One line: the study memberships and CPU-hours of :func:`study_costs`' rows, and what is still to run."""
    return (f"Run so far: {costs['runs'].sum()} study memberships, {costs['cpu_hours'].sum():.2f} CPU-hours (a run "
            f"that two studies share counts in both); still to run: {costs['to_run'].sum()} runs, "
            f"~{costs['cpu_hours_to_run'].sum():.1f} CPU-hours.")


def _short(config: Mapping[str, Any]) -> str:
    keys = ("size", "quant", "severity", "anomaly_fraction", "env", "max_grad_norm", "steps")
    return " ".join(f"{k}={config[k]}" for k in keys if k in config)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("probes", "summary", "regime", "costs"))
    parser.add_argument("--out", default=str(ROOT / "results" / "reference"), help="store folder (regime, costs)")
    parser.add_argument("--preset", default="cpu", help="preset to tabulate (regime, costs)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (probes)")
    parser.add_argument("--probe", action="append", default=None, metavar="NAME",
                        help="run only this probe (repeatable; probes)")
    args = parser.parse_args(argv)
    if args.command == "probes":
        try:
            probes = select_probes(args.probe)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        run_probes(workers=args.workers, probes=probes)
        print(write_summary())
    elif args.command == "summary":
        print(write_summary())
    elif args.command == "costs":
        costs = study_costs(Path(args.out), args.preset)
        print(cost_table_markdown(costs) if not costs.empty else "no runs")
    else:
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_colwidth", 40):
            table = regime_table(Path(args.out), args.preset)
            print(table.drop(columns=["why"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")
                  if not table.empty else "no runs")
            print()
            costs = study_costs(Path(args.out), args.preset)
            print(costs.to_string(index=False, float_format=lambda v: f"{v:.2f}") if not costs.empty else "")
            if not costs.empty:
                print(f"\n{cost_totals(costs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
