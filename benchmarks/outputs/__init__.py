"""Everything under ``OUT/`` rebuilt from the store alone: ``runs.csv`` and pivot tables
(:mod:`~benchmarks.outputs.tables`), plots (:mod:`~benchmarks.outputs.plots`) and ``report.md``
(:mod:`~benchmarks.outputs.report`, whose :func:`~benchmarks.outputs.report.build_outputs` writes them all)."""
