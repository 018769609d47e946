"""Performance measurements (scripts, not tests): ``python -m benchmarks.perf.<name>``."""
