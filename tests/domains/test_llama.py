"""The llama domain: configs, hyper-parameters, studies, and real smoke-size training (offline)."""

import itertools
import math

import pytest
import torch

import domains
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import default_hparams
from domains.base import ConfigError, RunContext
from domains.llama.domain import SIZES, build_model
from domains.quant import PROJECTIONS, QuantLinear
from tests.support.loggers import ListLogger


@pytest.fixture(scope="module")
def llama():
    return domains.get("llama")


def _context(llama, recipe, config, seed=0):
    return RunContext(recipe=recipe, hparams=default_hparams(llama, recipe, config), seed=seed, logger=ListLogger())


def test_presets_build_without_data_or_hub_and_bad_values_are_named(llama):
    for preset in ("smoke", "quick", "cpu", "paper"):
        llama.config(preset)
    paper = llama.config("paper")
    assert (paper.size, paper.seq_len, paper.batch_size, paper.steps, paper.warmup) == ("130M", 256, 512, 20000, 2000)
    assert (paper.dataset, paper.tokenizer, paper.vocab_size, paper.min_lr_ratio) == ("c4", "t5-base", 32000, 0.1)
    with pytest.raises(ConfigError, match="precision"):
        llama.config("smoke", {"precision": "int5"})
    with pytest.raises(ConfigError, match="size"):
        llama.config("smoke", {"size": "13B"})
    assert llama.config("smoke", {"precision": "fp4_e1m2", "steps": "12"}).steps == 12


def test_paper_size_table_gives_the_published_parameter_counts():
    config = domains.get("llama").config("smoke", {"size": "60M", "seq_len": 256})
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = build_model(config, vocab_size=32000, seed=0)
    assert 57e6 < sum(p.numel() for p in model.parameters()) < 59e6  # "LLaMA-60M" (58.1M with 32k vocab)
    assert SIZES["1B"] == (2048, 5461, 32, 24)


def test_quantized_model_swaps_exactly_the_seven_projections_per_layer(llama):
    config = llama.config("smoke", {"precision": "int4"})
    model = build_model(config, vocab_size=1024, seed=0)
    quantized = [name for name, module in model.named_modules() if isinstance(module, QuantLinear)]
    assert len(quantized) == 7 * SIZES["nano"][3]
    assert {name.rsplit(".", 1)[1] for name in quantized} == set(PROJECTIONS)
    assert type(model.lm_head) is torch.nn.Linear
    same = build_model(config, vocab_size=1024, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))  # seeded init


def test_hparams_follow_the_paper_and_scale_with_the_run(llama):
    four_bit = llama.config("cpu", {"precision": "int4"})
    full = llama.config("cpu", {"precision": "fp32"})
    assert llama.run_profile(four_bit).precision_class == "low-bit"
    assert llama.run_profile(full).precision_class == "32-bit"
    assert llama.run_profile(llama.config("paper")).precision_class == "16-bit"
    h = default_hparams(llama, "stable_spam", four_bit)
    assert (h["gamma1"], h["gamma2"], h["gamma3"], h["total_T"]) == (0.7, 0.9, 0.999, four_bit.steps)
    assert h["reset_interval"] == four_bit.steps / 20 == 50
    h = default_hparams(llama, "adam+moret+adagn", full)
    assert (h["gamma1"], h["gamma2"]) == (0.85, 0.99999) and "gamma3" not in h
    paper = llama.config("paper", {"precision": "int4"})
    assert default_hparams(llama, "stable_spam", paper)["reset_interval"] == 1000
    assert default_hparams(llama, "stable_spam", paper)["lr"] == 1e-3
    spam = default_hparams(llama, "spam", paper)
    assert (spam["reset_interval"], spam["warmup"]) == (500, 150)
    mini = default_hparams(llama, "adam_mini", paper)
    assert (mini["dim"], mini["n_heads"]) == (768, 12)
    assert default_hparams(llama, "lion", full)["lr"] == default_hparams(llama, "adam", full)["lr"] / 5
    assert set(default_hparams(llama, "adam", full)) == {"lr"}


def test_every_study_exists_at_every_preset_with_registered_recipes(llama):
    studies = studies_for(llama)
    assert {"main", "lr_sweep", "ablation", "integration", "low_bit", "hparams"} <= set(studies)
    for study, per_preset in studies.items():
        assert set(per_preset) == {"smoke", "quick", "cpu", "paper"}, study
        for preset, spec in per_preset.items():
            for point in itertools.product(*spec.grid.values()):
                llama.config(preset, dict(zip(spec.grid, point)))
    main = studies["main"]["cpu"]
    assert set(main.grid["quant"]) == {"int4", "fp4_e1m2", "none"} and main.seeds == 3
    assert studies["lr_sweep"]["cpu"].lrs == (1e-3, 2e-3, 6e-3, 2e-2, 6e-2, 2e-1)
    import optimizers

    known = set(optimizers.available())
    for per_preset in studies.values():
        for spec in per_preset.values():
            assert {recipe.split(":")[0] for recipe in spec.recipes} <= known


@pytest.mark.parametrize("recipe", ["adam", "stable_spam"])
def test_smoke_run_end_to_end_gives_a_finite_perplexity(llama, recipe):
    config = llama.config("smoke", {"precision": "int4"})
    ctx = _context(llama, recipe, config)
    result = llama.run(config, ctx)
    assert math.isfinite(result["val_ppl"]) and result["val_ppl"] == pytest.approx(math.exp(result["val_loss"]))
    assert result["steps"] == config.steps and result["tokens_per_second"] > 0
    assert len(ctx.logger.steps) == config.steps and ctx.logger.info["parameters"] > 0
    assert ctx.logger.evals[-1][1]["val_ppl"] == result["val_ppl"]


def test_int4_training_lowers_the_validation_loss(llama):
    config = llama.config("smoke", {"precision": "int4", "steps": 40})
    ctx = _context(llama, "adam", config)
    job = llama.build_job(config, ctx)
    with torch.no_grad():
        before = job.evaluate(job.model, 0)["val_loss"]
    after = job.run(ctx)["val_loss"]
    assert before > math.log(1024) - 0.5  # an untrained model is near-uniform over the vocabulary
    assert after < before - 0.5
