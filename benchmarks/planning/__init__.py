"""What to run: a request (flags, a suite file or code) expanded into run specs, each with a stable id.

* :mod:`~benchmarks.planning.request` -- :class:`SuiteRequest` and the parsers of its command-line text;
* :mod:`~benchmarks.planning.suite_file` -- the same request declared in a TOML/YAML file;
* :mod:`~benchmarks.planning.expansion` -- :func:`plan_suite`: request -> :class:`Plan` of run specs;
* :mod:`~benchmarks.planning.run_spec` -- :class:`RunSpec`, one run and its ``run_id``;
* :mod:`~benchmarks.planning.recipe_check` -- every recipe built once before anything runs.
"""

from benchmarks.planning.expansion import Plan, expand, plan_suite
from benchmarks.planning.request import OptimizerItem, SuiteRequest
from benchmarks.planning.run_spec import RunSpec

__all__ = ["OptimizerItem", "Plan", "RunSpec", "SuiteRequest", "expand", "plan_suite"]
