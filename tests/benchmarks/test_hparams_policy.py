"""The engine's hyper-parameter policy: one set of rules for every domain, built-in or the user's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

import domains
from benchmarks.errors import BadInput
from benchmarks.planning import SuiteRequest, expand
from benchmarks.planning.request import parse_optimizers
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import RunTooShort, default_hparams, minimum_steps, policy_hparams
from domains.base import PRESETS, Domain, RunProfile, StudySpec
from tests.support.registry import registered

BUILT_IN = ("llama", "moe", "mujoco", "weather", "quadratic")
STABLE_SPAM_EQUIVALENTS = ("stable_spam", "stable_spam_ref", "adam+moret+adagn+adaclip")


def study_configs(domain: Domain, preset: str) -> list:
    """The preset's config and the config of every grid point of the domain's studies at that preset."""
    configs = {repr(domain.config(preset)): domain.config(preset)}
    for per_preset in studies_for(domain).values():
        spec = per_preset.get(preset)
        for point in itertools.product(*(spec.grid.values() if spec else ())):
            config = domain.config(preset, dict(zip(spec.grid, point)))
            configs[repr(config)] = config
    return list(configs.values())


@pytest.mark.parametrize("name", BUILT_IN)
def test_stable_spam_and_its_chain_get_identical_hyper_parameters_in_every_domain_and_preset(name):
    domain = domains.get(name)
    for preset in PRESETS:
        for config in study_configs(domain, preset):
            stable = default_hparams(domain, "stable_spam", config)
            assert {"gamma1", "gamma2", "gamma3", "reset_interval", "total_T"} <= set(stable), (preset, config)
            for other in STABLE_SPAM_EQUIVALENTS[1:]:
                assert default_hparams(domain, other, config) == stable, (name, preset, other, config)


@pytest.mark.parametrize("name", BUILT_IN)
def test_reset_intervals_are_the_papers_fraction_of_every_presets_run(name):
    domain = domains.get(name)
    for preset in PRESETS:
        config = domain.config(preset)
        steps = domain.run_profile(config).optimizer_steps
        stable = default_hparams(domain, "stable_spam", config)
        # the paper's 1000 (Stable-SPAM) and 500 / 150 (SPAM) of 20k steps, to the nearest step
        assert abs(stable["reset_interval"] - steps / 20) <= 0.5 and stable["total_T"] == steps, preset
        if steps < 134:  # too short for SPAM's warm-up: an error (the preset's studies do not run SPAM)
            with pytest.raises(RunTooShort):
                default_hparams(domain, "spam", config)
            continue
        spam = default_hparams(domain, "spam", config)
        assert abs(spam["reset_interval"] - steps / 40) <= 0.5, preset
        assert abs(spam["warmup"] - steps * 150 / 20000) <= 0.5 and spam["warmup"] >= 1, preset


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_preset_is_long_enough_for_every_recipe_its_studies_run(name):
    domain = domains.get(name)
    for preset in PRESETS:
        studies = tuple(study for study, per_preset in studies_for(domain).items() if preset in per_preset)
        assert expand(SuiteRequest(preset=preset, domains=(name,), studies=studies)).specs


@pytest.mark.parametrize("steps, moret, spam_interval, spam_warmup", [
    (20_000, 1000, 500, 150),  # the paper's run
    (3000, 150, 75, 23),  # OLMoE's 3000 steps: 22.5 rounds half up
    (200, 10, 5, 2),  # 1.5 -> 2
    (1920, 96, 48, 14),  # 14.4 -> 14
    (990_000, 49_500, 24_750, 7425),  # longer than the paper's run: the fraction, no cap
])
def test_counts_by_hand(steps, moret, spam_interval, spam_warmup):
    assert policy_hparams("stable_spam", RunProfile(steps))["reset_interval"] == moret
    spam = policy_hparams("spam", RunProfile(steps))
    assert (spam["reset_interval"], spam["warmup"]) == (spam_interval, spam_warmup)


def test_gammas_follow_the_precision_class_and_fp32_is_the_16_bit_stand_in():
    gammas = {precision: policy_hparams("stable_spam", RunProfile(1000, precision_class=precision))
              for precision in ("low-bit", "16-bit", "32-bit")}
    assert {p: (h["gamma1"], h["gamma2"], h["gamma3"]) for p, h in gammas.items()} == {
        "low-bit": (0.7, 0.9, 0.999), "16-bit": (0.85, 0.99999, 0.999), "32-bit": (0.85, 0.99999, 0.999)}
    assert policy_hparams("adam+moret+adagn", RunProfile(1000, precision_class="low-bit"))["gamma1"] == 0.7
    assert "gamma3" not in policy_hparams("adam+moret+adagn", RunProfile(1000))
    assert policy_hparams("adam", RunProfile(1000, precision_class="low-bit")) == {"lr": 1e-3}
    llama = domains.get("llama")
    assert default_hparams(llama, "lion_stable", llama.config("cpu", {"precision": "int4"}))["gamma2"] == 0.9
    assert default_hparams(llama, "lion_stable", llama.config("cpu", {"precision": "fp32"}))["gamma2"] == 0.99999


def test_lr_by_family_shape_and_domain_settings():
    profile = RunProfile(1000, hidden_size=96, heads=6, base_lr=3e-4, settings={"adam-like": {"eps": 1e-5}})
    assert policy_hparams("adam", profile) == {"lr": 3e-4, "eps": 1e-5}
    assert policy_hparams("lion", profile) == {"lr": 6e-5}  # sign-based: a fifth, written exactly
    assert policy_hparams("lion_stable", profile)["lr"] == 6e-5 and "eps" not in policy_hparams("lion_stable", profile)
    assert policy_hparams("adafactor", profile) == {"lr": 3e-4}  # factored: Adam's LR; its eps pair untouched
    mini = policy_hparams("adam_mini", profile)
    assert (mini["dim"], mini["n_heads"], mini["eps"]) == (96, 6, 1e-5)
    assert "dim" not in policy_hparams("adam_mini", RunProfile(1000))  # no shape: the recipe's own default


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_domain_gives_lion_a_fifth_and_adafactor_all_of_adams_lr(name):
    domain = domains.get(name)
    for preset in PRESETS:
        config = domain.config(preset)
        adam = default_hparams(domain, "adam", config)["lr"]
        assert default_hparams(domain, "lion", config)["lr"] == pytest.approx(adam / 5, rel=1e-12), preset
        assert default_hparams(domain, "adafactor", config)["lr"] == adam, preset


def test_a_run_too_short_for_the_papers_ratio_is_an_error_naming_the_minimum():
    assert (minimum_steps("spam"), minimum_steps("stable_spam"), minimum_steps("adam")) == (134, 20, 0)
    with pytest.raises(RunTooShort, match=r"spam needs at least 134 optimizer steps \(SPAM's post-reset LR warm-up "
                                          r"is 150 of the paper's 20000 steps\), the run has 133"):
        policy_hparams("spam", RunProfile(133))
    assert policy_hparams("spam", RunProfile(134))["warmup"] == 1  # 1.005 steps
    with pytest.raises(RunTooShort, match="at least 20 optimizer steps"):
        policy_hparams("adam+moret", RunProfile(19))
    assert policy_hparams("adam+moret", RunProfile(20))["reset_interval"] == 1
    assert policy_hparams("adam", RunProfile(1)) == {"lr": 1e-3}


def test_the_engine_names_the_preset_or_budget_that_is_too_short():
    with pytest.raises(BadInput, match=r"moe preset 'smoke' is too short for spam: spam needs at least 134"):
        expand(SuiteRequest(preset="smoke", domains=("moe",), optimizers=parse_optimizers("spam")))
    with pytest.raises(BadInput, match=r"quadratic budget 100 is too short for spam"):
        expand(SuiteRequest(preset="smoke", domains=("quadratic",), optimizers=parse_optimizers("spam"),
                            budgets={"quadratic": 100}))


def test_a_reset_interval_longer_than_the_run_gets_one_warning_line():
    request = SuiteRequest(preset="smoke", domains=("quadratic",), seeds=2,
                           optimizers=parse_optimizers("stable_spam:reset_interval=1000,spam:reset_interval=150,adam"))
    notes = expand(request).notes
    assert notes == ["quadratic: stable_spam's reset_interval 1000 is longer than the run (200 optimizer steps): "
                     "its momentum reset never fires"]  # once, not per seed; 150 <= 200 fires
    assert expand(SuiteRequest(preset="smoke", domains=("quadratic",))).notes == []
    off = SuiteRequest(preset="smoke", domains=("quadratic",), optimizers=parse_optimizers("spam:reset_interval=0"))
    assert expand(off).notes == []  # 0: resets off, nothing to warn about


@dataclass
class StepsConfig:
    steps: int = 300


class MinimalDomain(Domain):
    """A user's domain declaring only what the contract requires (no run_profile)."""

    name = "minimal_test_domain"
    metric = "score"
    Config = StepsConfig
    presets = {"smoke": {}, "cpu": {"steps": 6000}}

    def studies(self):
        return {"main": {p: StudySpec(recipes=("stable_spam", "spam", "lion")) for p in ("smoke", "cpu")}}

    def run(self, config, ctx):
        raise NotImplementedError


def test_a_user_domain_that_declares_nothing_gets_the_policy_scaled_to_its_run():
    # steps, then 1/20, 1/40 and 150/20000 of them by hand (300: 7.5 -> 8, 2.25 -> 2)
    with registered(MinimalDomain):
        for preset, steps, moret, spam_interval, spam_warmup in (("smoke", 300, 15, 8, 2), ("cpu", 6000, 300, 150, 45)):
            request = SuiteRequest(preset=preset, domains=(MinimalDomain.name,))
            specs = {spec.recipe: spec.hparams for spec in expand(request).specs}
            assert specs["stable_spam"] == {"lr": 1e-3, "gamma1": 0.85, "gamma2": 0.99999, "gamma3": 0.999,
                                            "reset_interval": moret, "total_T": steps}
            assert specs["spam"] == {"lr": 1e-3, "reset_interval": spam_interval, "warmup": spam_warmup}
            assert specs["lion"] == {"lr": 2e-4}


class RetiredHookDomain(MinimalDomain):
    name = "retired_hook_test_domain"

    def default_hparams(self, recipe, config):
        return {"lr": 0.1}


class EnvironmentStepsDomain(MinimalDomain):
    name = "env_steps_test_domain"
    budget_unit = "environment steps"


def test_a_domain_that_does_not_declare_its_run_properly_is_told_how():
    with registered(RetiredHookDomain):
        with pytest.raises(BadInput, match="defines default_hparams.*declare run_profile"):
            expand(SuiteRequest(preset="smoke", domains=(RetiredHookDomain.name,)))
    with registered(EnvironmentStepsDomain):
        with pytest.raises(BadInput, match="counts its budget in environment steps: declare run_profile"):
            expand(SuiteRequest(preset="smoke", domains=(EnvironmentStepsDomain.name,)))


def test_run_profile_rejects_nonsense():
    with pytest.raises(ValueError, match="precision_class"):
        RunProfile(100, precision_class="fp32")
    with pytest.raises(ValueError, match="optimizer_steps"):
        RunProfile(-1)
    with pytest.raises(ValueError, match="base_lr"):
        RunProfile(100, base_lr=0.0)
