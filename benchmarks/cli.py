"""The ``run_all.py`` command line: arguments in, :func:`benchmarks.run_plan` (or, for ``report``,
:func:`benchmarks.outputs.report.build_outputs`) called, a summary out.

Exit codes: 0 when the suite ran (diverged and failed runs included; failures are listed in the summary),
2 on bad input (one line on stderr, nothing written) -- a results store at ``--out`` that is corrupt, empty,
read-only or not a file included (:class:`~benchmarks.errors.StoreUnusable`: the line names the file and a way
out) --, 1 when the suite itself failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.errors import BadInput
from benchmarks.planning import Plan, SuiteRequest, plan_suite
from benchmarks.planning.request import parse_lrs, parse_optimizers, parse_sets
from benchmarks.running.plan_runner import BACKENDS, PlanResult, run_plan
from domains.base import PRESETS

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_ROOT_ENV = "SSB_RESULTS_ROOT"
DEFAULT_OUT_NAME = "latest"  # `python run_all.py` writes to RESULTS_ROOT/latest/ (git-ignored)

DESCRIPTION = """\
Benchmark optimizers for training stability across domains (LLaMA, OLMoE, MuJoCo, weather, quadratic).

  python run_all.py [options]          run a suite (default: every domain's default study, preset quick)
  python run_all.py report --out DIR   rebuild runs.csv, tables/, plots/ and report.md from DIR/runs.sqlite

Runs already in the store (finished, diverged or failed) are skipped, so a killed suite resumes where it
stopped. Outputs in --out: runs.sqlite, runs.csv (+ runs.parquet), tables/*.md|tex, plots/*.png, report.md.
"""

EPILOG = f"""\
examples:
  python run_all.py --preset smoke --domains quadratic --optimizers adam,stable_spam --seeds 2
  python run_all.py --study lr_sweep --domains llama --lrs 1e-4,5e-4,1e-3 --set llama.quant=int4,fp4_e1m2
  python run_all.py --optimizers adam,stable_spam:gamma1=0.85:gamma2=0.99999 --set weather.severity=0,2,5
  python run_all.py --suite my_suite.toml --workers 2
  RAY_ADDRESS=auto python run_all.py --backend ray --preset paper

precedence: an optimizer item's own lr= > --lrs > the study's LRs > the domain's default LR per recipe;
flags > --suite file > the study. A run is identified by a hash of (domain, preset, resolved config, recipe,
hyper-parameters, seed, budget); a run asked for by two studies runs once.

suite files (TOML; YAML by suffix) hold the same options, e.g.
  preset = "smoke"
  domains = ["quadratic"]
  study = "main"
  seeds = 2
  optimizers = ["adam", "stable_spam:gamma1=0.85"]
  [set.quadratic]
  spike_prob = [0.0, 0.05]     # a list is a grid
(full format: benchmarks/planning/suite_file.py)

--out may be any writable folder (default: {REPO_ROOT / 'results' / DEFAULT_OUT_NAME}, git-ignored); the committed
reference results live in results/reference/ and change only on purpose. A suite file's `out` key must stay
inside the results root ({REPO_ROOT / 'results'}, or ${RESULTS_ROOT_ENV}). With --backend ray the driver writes
the store (cluster nodes need not share a filesystem); with --workers N each worker process writes its own runs.

your own domain, in one file (see README, "Adding a domain"):
  python run_all.py --domain-module my_domain.py --domains mine --preset smoke
  the file calls domains.register(MyDomain); without --study a domain runs its `default_study` (class
  attribute, default "main"), which its studies() must declare at the preset.
Exit codes: 0 the suite ran (diverged or failed runs included), 2 bad input (one line on stderr, nothing
written), 1 the suite itself failed.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (BadInput) instead of usage + exit."""

    def error(self, message: str):
        raise BadInput(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The run parser (the ``report`` subcommand has its own, :func:`build_report_parser`)."""
    parser = _Parser(prog="run_all.py", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help="scale of every domain: smoke (seconds), quick (default), cpu (minutes), paper (GPUs)")
    parser.add_argument("--study", default=None, metavar="NAME[,NAME]",
                        help="study to run (main, lr_sweep, ablation, integration, low_bit, hparams, severity, "
                             "fraction, moe, rl, ...); default: each domain's default study. Domains without it are "
                             "skipped")
    parser.add_argument("--domains", default=None, metavar="A,B", help="domains to run (default: all available)")
    parser.add_argument("--optimizers", default=None, metavar="ITEMS",
                        help="replace the study's recipes: comma-separated NAME or NAME:key=value:key=value "
                             "(e.g. stable_spam:gamma1=0.85); tuple values as a/b (betas=0.9/0.95)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N", help="run seeds 0..N-1 (default: the study's)")
    parser.add_argument("--lrs", default=None, metavar="LR,LR",
                        help="peak learning rates replacing the study's / each recipe's default (an optimizer item's "
                             "own lr= wins)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="DOMAIN.FIELD=V[,V]",
                        help="set a domain config field; several comma-separated values make a grid "
                             "(e.g. llama.quant=int4,fp4_e1m2 llama.compute=bf16, weather.severity=0,2,5). Repeatable")
    parser.add_argument("--suite", default=None, metavar="FILE",
                        help="suite file (TOML, or YAML by suffix) declaring the same options; flags given here win")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"results folder, any writable path (default: results/{DEFAULT_OUT_NAME}/, git-ignored)")
    parser.add_argument("--domain-module", dest="domain_modules", action="append", default=[], metavar="FILE|MODULE",
                        help="load a domain of your own: a .py file or a dotted module that calls "
                             "domains.register(MyDomain). Repeatable")
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also stream every run's curves to TensorBoard event files under DIR/<run name>/ "
                             "(watch with `tensorboard --logdir DIR`)")
    parser.add_argument("--compile", dest="compile_model", action="store_true",
                        help="train the supervised domains (llama, moe, weather) through torch.compile: about 1.3x "
                             "the steps/s of the cpu presets after a compile of a few seconds per run; equal to "
                             "eager to float rounding, so compare runs of one setting (the run's info says which)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local: worker processes (default 1: run in this process); ray: CPUs of the local Ray "
                             "instance started when $RAY_ADDRESS is unset (default: all)")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local (default) or ray: one Ray task per run on $RAY_ADDRESS or a local instance")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs, run nothing")
    parser.add_argument("--no-outputs", action="store_true",
                        help="do not rebuild tables/plots/report at the end (use `run_all.py report` later)")
    return parser


def build_report_parser() -> argparse.ArgumentParser:
    """The ``report`` subcommand's parser."""
    parser = _Parser(prog="run_all.py report",
                     description="Rebuild runs.csv, tables/, plots/ and report.md from DIR/runs.sqlite alone.")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"results folder holding runs.sqlite (default: results/{DEFAULT_OUT_NAME}/)")
    parser.add_argument("--domain-module", dest="domain_modules", action="append", default=[], metavar="FILE|MODULE",
                        help="load a domain of your own (its share-matrix declarations reach the plots). Repeatable")
    return parser


def results_root() -> Path:
    """The folder a suite file's ``out`` must stay inside: ``$SSB_RESULTS_ROOT`` or the repository's ``results/``."""
    return Path(os.environ.get(RESULTS_ROOT_ENV) or REPO_ROOT / "results").resolve()


def default_out() -> Path:
    """Where a suite goes without ``--out``: ``RESULTS_ROOT/latest`` (git-ignored)."""
    return results_root() / DEFAULT_OUT_NAME


def check_out(text: str | None, flag: str = "--out") -> Path:
    """``--out`` resolved (None: :func:`default_out`): any path that is, or can be created as, a writable
    folder; BadInput otherwise (SPEC §6)."""
    if text is None:
        return default_out()
    out = Path(text).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BadInput(f"{flag} {text}: not a folder")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {text}: not writable ({existing} does not let this user create files)")
    return out


def suite_file_out(text: str, where: str) -> Path:
    """A suite file's ``out``: relative to the results root, and inside it (a file someone hands you may not
    write elsewhere); BadInput otherwise."""
    root = results_root()
    out = (root / Path(text).expanduser()).resolve()
    if out != root and root not in out.parents:
        raise BadInput(f"{where}: out {text!r} is outside the results root {root} (pass --out to write elsewhere, "
                       f"or set {RESULTS_ROOT_ENV})")
    return check_out(str(out), flag=f"{where}: out")


def out_for(args: argparse.Namespace, request: SuiteRequest) -> Path:
    """The suite's results folder: ``--out``, else the suite file's ``out``, else :func:`default_out`."""
    if args.out is not None or request.out is None:
        return check_out(args.out)
    return suite_file_out(request.out, request.origin("out", "suite file"))


def request_from_args(args: argparse.Namespace) -> SuiteRequest:
    """The suite request: the suite file's (if any), with the flags given on the command line on top."""
    flags = SuiteRequest(
        preset=args.preset or "quick",
        studies=_csv(args.study),
        domains=_csv(args.domains),
        optimizers=parse_optimizers(args.optimizers) if args.optimizers is not None else None,
        lrs=parse_lrs(args.lrs) if args.lrs is not None else None,
        seeds=args.seeds,
        sets=parse_sets(args.sets),
    )
    given = {name for name, value in (("preset", args.preset), ("studies", args.study), ("domains", args.domains),
                                      ("optimizers", args.optimizers), ("lrs", args.lrs), ("seeds", args.seeds))
             if value is not None}
    if args.sets:
        given.add("sets")
    flags.domain_modules = tuple(args.domain_modules)
    if args.suite is None:
        return flags
    from benchmarks.planning.suite_file import load_suite_file

    from_file, _ = load_suite_file(args.suite)
    merged = from_file.merged_with(flags, given)
    merged.domain_modules = from_file.domain_modules + flags.domain_modules  # the flag adds to the file's
    return merged


def _csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise BadInput(f"empty list {text!r}")
    return items


def run_suite(args: argparse.Namespace) -> int:
    """Plan, print the notes (and, on a dry run, the runs), run the plan and print its summary."""
    request = request_from_args(args)
    out = out_for(args, request)
    tensorboard = check_out(args.tensorboard, flag="--tensorboard") if args.tensorboard is not None else None
    plan = plan_suite(request)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    result = run_plan(plan, out, backend=args.backend, workers=args.workers, retry_failed=args.retry_failed,
                      dry_run=args.dry_run, outputs=not args.no_outputs, tensorboard=tensorboard,
                      compile_model=args.compile_model)
    if args.dry_run:
        _print_plan(plan, out)
    else:
        _print_summary(result, outputs=not args.no_outputs)
    return 0


def _print_plan(plan: Plan, out: Path) -> None:
    for spec in plan.specs:
        print(f"{spec.run_id}  {spec.domain:10s} {spec.recipe:28s} lr={spec.lr} seed={spec.seed} "
              f"{spec.variant} {dict(spec.overrides) or ''} studies={','.join(spec.studies)}")
    print(f"{len(plan.specs)} runs planned (dry run: nothing written; results in {out})")


def _print_summary(result: PlanResult, outputs: bool) -> None:
    counts, out = result.counts, result.out
    print(f"suite: {len(result.plan.specs)} run(s) — " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    for row in result.failed[:10]:
        print(f"  failed: {row['domain']} {row['recipe']} lr={row['lr']} seed={row['seed']}: {row['error']}")
    if outputs:
        print(f"outputs: {out}/ (runs.sqlite, runs.csv, tables/, plots/, report.md)")
    else:
        print(f"store: {out}/runs.sqlite (outputs not rebuilt: run `python run_all.py report --out {out}`)")


def run_report(argv: list[str]) -> int:
    """``run_all.py report --out DIR``: rebuild every output from the store alone."""
    args = build_report_parser().parse_args(argv)
    out = check_out(args.out)
    if args.domain_modules:
        from benchmarks.planning.domain_modules import load_domain_modules

        load_domain_modules(args.domain_modules)
    if not (out / "runs.sqlite").is_file():
        raise BadInput(f"--out {args.out}: no results store {out / 'runs.sqlite'}")
    from benchmarks.outputs.report import build_outputs

    written = build_outputs(out)
    print(f"report: rebuilt {len(written)} files in {out}/ (report.md, runs.csv, tables/, plots/)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``run_all.py``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["report"]:
            return run_report(argv[1:])
        return run_suite(build_parser().parse_args(argv))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are stored; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # the suite itself failed (not a run: runs record their own failures)
        print(f"error: suite failed: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
