"""Tests of the benchmark engine (benchmarks/)."""
