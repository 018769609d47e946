"""The benchmark engine: request -> plan of run specs -> domain -> per-step records -> store -> outputs.

Subpackages, in the order data flows through them:

* :mod:`benchmarks.planning` -- what to run: a :class:`~benchmarks.planning.SuiteRequest` (flags, a TOML/YAML
  suite file or code) expanded into :class:`~benchmarks.planning.RunSpec` s, each with a stable ``run_id``;
* :mod:`benchmarks.protocol` -- the paper's protocol as data: the built-in domains' studies, the claims C1-C14;
* :mod:`benchmarks.running` -- running them: :func:`run_plan`, one run (seeding, device, logger, divergence and
  failure capture, environment), executors (in process, process pool, Ray);
* :mod:`benchmarks.store` -- the SQLite results store (runs, curves, metadata), one transaction per run;
* :mod:`benchmarks.analysis` -- the store as pandas, curve telemetry (spikes, steps to target), statistics;
* :mod:`benchmarks.audit` -- the claims checked against the runs (comparisons, verdict rules);
* :mod:`benchmarks.outputs` -- ``runs.csv``, tables, plots and ``report.md``, rebuilt from the store alone.

:mod:`benchmarks.cli` is the ``run_all.py`` command line over :func:`run_plan` (:mod:`benchmarks.errors`: its
bad-input error); :mod:`benchmarks.perf` holds the performance scripts.
"""

from benchmarks.planning import Plan, SuiteRequest, plan_suite
from benchmarks.running.plan_runner import PlanResult, run_plan

__all__ = ["Plan", "PlanResult", "SuiteRequest", "plan_suite", "run_plan"]
