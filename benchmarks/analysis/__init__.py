"""Analysis of stored runs: the store as pandas (:mod:`~benchmarks.analysis.frame`), per-step curve analysis
(:mod:`~benchmarks.analysis.telemetry`: spikes, steps to a target, curve areas) and the statistics every output
and the claims audit use (:mod:`~benchmarks.analysis.stats`)."""
