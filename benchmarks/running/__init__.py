"""Running a plan: :func:`~benchmarks.running.plan_runner.run_plan` (the engine's one entry point), one run at
a time (:mod:`~benchmarks.running.runner`: seeding, device, divergence and failure capture), many at once
(:mod:`~benchmarks.running.executors`: in process, a process pool or Ray), the logger a domain reports to
(:mod:`~benchmarks.running.run_logger`) and where a run ran (:mod:`~benchmarks.running.environment`).
"""
