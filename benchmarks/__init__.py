"""The benchmark engine: suite -> run specs -> domain -> per-step records -> store -> tables/plots/report.

Modules, in the order data flows through them:

* :mod:`benchmarks.suites`, :mod:`benchmarks.suite_file` -- what to run (flags or a TOML/YAML file) expanded
  into :class:`benchmarks.spec.RunSpec` s, each with a stable ``run_id``;
* :mod:`benchmarks.runner` -- runs one spec (seeding, device, :mod:`benchmarks.logger`, divergence/failure
  capture, :mod:`benchmarks.environment` metadata);
* :mod:`benchmarks.executors` -- sequential, process-pool and Ray execution of many specs;
* :mod:`benchmarks.store` -- the SQLite results store (runs, curves, metadata), one transaction per run;
* :mod:`benchmarks.frame` -- the store as pandas; :mod:`benchmarks.telemetry` and :mod:`benchmarks.stats`
  -- spike counts, steps-to-target, curve areas, summaries, bootstrap intervals;
* :mod:`benchmarks.tables`, :mod:`benchmarks.plots`, :mod:`benchmarks.claims`, :mod:`benchmarks.report`
  -- everything under ``OUT/`` rebuilt from the store alone;
* :mod:`benchmarks.cli` -- the ``run_all.py`` command line (:mod:`benchmarks.errors`: its bad-input error).
"""
