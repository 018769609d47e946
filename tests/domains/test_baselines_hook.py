"""The Domain contract's regime-baseline hook: what a domain that writes none reports."""

from domains.base import Domain


class Bare(Domain):
    name, metric, Config, presets = "bare", "m", object, {}

    def run(self, config, ctx):
        return {"m": 0.0}


def test_a_domain_without_baselines_reports_none_and_gates_on_all():
    assert Bare().baselines(None, seed=0) == {}
    assert Bare.gate_baselines is None
