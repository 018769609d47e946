"""The paper's protocol as data: the studies of the built-in domains and the claims C1-C14."""

import re

import pytest

import domains
import optimizers
from benchmarks.audit.claim import PAPER_VERSIONS
from benchmarks.planning import SuiteRequest, expand
from benchmarks.protocol import PAPER_STUDIES, studies_for
from benchmarks.protocol.claims import CLAIMS, FOUR_BIT, PAPER_FOUR_BIT, SIXTEEN_BIT
from domains.base import PRESETS


def test_every_built_in_paper_domain_has_its_default_study_at_every_preset():
    for name, studies in PAPER_STUDIES.items():
        domain = domains.get(name)
        assert studies_for(domain) is studies
        assert domain.default_study in studies, name
        for study, per_preset in studies.items():
            assert set(per_preset) == set(PRESETS), (name, study)


def test_a_domain_outside_the_protocol_declares_its_own_studies():
    quadratic = domains.get("quadratic")
    assert "quadratic" not in PAPER_STUDIES and studies_for(quadratic) == quadratic.studies()


def test_the_hparams_sweep_moves_one_value_at_a_time_and_scales_reset_intervals_to_the_run():
    """Fig. 8 at the cpu preset (1000 steps): 3 values each of gamma1/2/3 and reset intervals of the paper's
    250..5000 of 20,000 steps (1/80..1/4 of the run): 12.5 -> 13, 25, 50, 125, 250."""
    cpu = PAPER_STUDIES["llama"]["hparams"]["cpu"]
    assert domains.get("llama").presets["cpu"]["steps"] == 1000
    intervals = [r for r in cpu.recipes if "reset_interval" in r]
    assert intervals == [f"stable_spam:reset_interval={v}" for v in (13, 25, 50, 125, 250)]
    assert len(cpu.recipes) == 1 + 3 * 3 + 5
    specs = expand(SuiteRequest(preset="cpu", domains=("llama",), studies=("hparams",), seeds=1)).specs
    # the items equal to Stable-SPAM's own 4-bit defaults at 1000 steps (gamma1 0.7, gamma2 0.9, gamma3 0.999,
    # reset interval 50) are the plain stable_spam run, planned once: 15 items, 11 runs
    assert {s.hparams["reset_interval"] for s in specs} == {13, 25, 50, 125, 250} and len(specs) == 11


def test_run_counts_of_the_paper_studies_at_the_cpu_preset():
    def count(domain, study):
        return len(expand(SuiteRequest(preset="cpu", domains=(domain,), studies=(study,))).specs)

    assert count("weather", "severity") == 3 * 3 * 10  # recipes x severities x seeds
    assert count("weather", "fraction") == 3 * 3 * 5
    assert count("mujoco", "rl") == 2 * 3 * 2 * 3  # recipes x envs x PPO clip arms x seeds
    assert count("moe", "moe") == 2 * 3
    # Fig. 2's four optimizers and Stable-SPAM x LRs x (16-bit, INT4, FP4) x seeds
    assert count("llama", "lr_sweep") == 5 * 6 * 3 * 3
    # 5 rivals + stable_spam_ref at three precisions, Adam-mini at 16-bit only, 3 seeds
    assert count("llama", "main") == (6 * 3 + 1) * 3


def test_claims_are_complete_cited_and_name_real_recipes():
    assert [c.id for c in CLAIMS] == [f"C{i}" for i in range(1, 15)]
    for claim in CLAIMS:
        assert claim.sources and all(s.version in PAPER_VERSIONS for s in claim.sources), claim.id
        assert claim.selection.domain in domains.available(), claim.id
        named = set(claim.selection.recipes or ())
        for check in claim.checks:
            named |= {v for k, v in vars(check).items() if k in ("winner", "rival", "a", "b", "candidate",
                                                                   "reference", "baseline")}
            named |= set(getattr(check, "rivals", ()))
        assert named - {"adam"} <= set(optimizers.available()), claim.id
    tables_10_to_13 = {c.id for c in CLAIMS for s in c.sources if re.fullmatch(r"Tables? 1[0-3].*", s.where)}
    assert {c.id for c in CLAIMS for s in c.sources if s.version == "review"} == tables_10_to_13


def test_precision_groups_come_from_the_quantizer():
    from domains import quant

    assert set(FOUR_BIT) == {"int4", "fp4_e1m2", "fp4_e1m2_ref", "mxfp4", "nvfp4"}
    assert set(FOUR_BIT) | {"int2", "int3", "int8"} == set(quant.FORMATS)
    assert set(PAPER_FOUR_BIT) <= set(FOUR_BIT) and not set(SIXTEEN_BIT) & set(quant.FORMATS)


def test_an_unknown_paper_version_is_refused():
    from benchmarks.audit.claim import Source

    with pytest.raises(ValueError, match="unknown paper version"):
        Source("Table 1", "arxiv-v2")
