"""Precision as two settings (compute, quant): the old single ``precision`` mapping, validation, the policy class."""

from __future__ import annotations

import math

import pytest
import torch

import domains
from benchmarks.protocol.hparams import default_hparams
from domains.base import ConfigError, RunContext
from domains.llama.domain import build_model
from domains.lm import quant
from domains.lm.precision import (
    parse_precision,
    precision_class,
    precision_label,
    precision_of,
    resolve_alias,
    upgrade_stored_config,
)
from domains.lm.quant import QuantLinear
from tests.support.loggers import ListLogger

# The old single field's values and what they meant, written out by hand (a format alone was fp32 compute).
OLD_MEANING = {"fp32": ("fp32", "none"), "bf16": ("bf16", "none"), "int2": ("fp32", "int2"),
               "int3": ("fp32", "int3"), "int4": ("fp32", "int4"), "int8": ("fp32", "int8"),
               "fp4_e1m2": ("fp32", "fp4_e1m2"), "fp4_e1m2_ref": ("fp32", "fp4_e1m2_ref"),
               "mxfp4": ("fp32", "mxfp4"), "nvfp4": ("fp32", "nvfp4")}


@pytest.fixture(scope="module")
def llama():
    return domains.get("llama")


def test_every_old_precision_value_maps_to_the_pair_it_meant():
    assert set(OLD_MEANING) == {"fp32", "bf16", *quant.FORMATS}
    for old, pair in OLD_MEANING.items():
        assert parse_precision(old) == pair
        assert precision_of({"precision": old, "steps": 3}) == pair  # a stored config from before the split
        assert precision_label(*pair) == old  # and the pair is still called by its old name
    assert parse_precision("bf16+int4") == ("bf16", "int4") and precision_label("bf16", "int4") == "bf16+int4"
    assert precision_of({"compute": "bf16", "quant": "nvfp4"}) == ("bf16", "nvfp4")
    for bad in ("int5", "fp16", "bf16+int5", "fp16+int4", "int4+bf16", ""):
        with pytest.raises(ValueError, match="must be one of"):
            parse_precision(bad)


def test_stored_old_configs_are_upgraded_for_the_lm_domains_only():
    old = {"size": "nano", "precision": "int4", "steps": 140}
    assert upgrade_stored_config("llama", old) == {"size": "nano", "compute": "fp32", "quant": "int4", "steps": 140}
    assert upgrade_stored_config("moe", {"precision": "bf16"}) == {"compute": "bf16", "quant": "none"}
    assert upgrade_stored_config("mine", old) == old  # another domain's ``precision`` is its own business
    new = {"compute": "bf16", "quant": "int4"}
    assert upgrade_stored_config("llama", new) == new
    assert upgrade_stored_config("llama", {"precision": "weird"}) == {"precision": "weird"}  # left as stored


def test_the_alias_sets_both_settings_and_an_explicit_compute_wins():
    assert resolve_alias({"precision": "int4", "steps": 5}, "llama") == {"compute": "fp32", "quant": "int4",
                                                                          "steps": 5}
    # a study grid's quant axis is replaced, as the old precision axis was
    assert resolve_alias({"quant": "none", "precision": "fp4_e1m2"}, "llama") == {"compute": "fp32",
                                                                                    "quant": "fp4_e1m2"}
    assert resolve_alias({"precision": "int4", "compute": "bf16"}, "llama") == {"compute": "bf16", "quant": "int4"}
    assert resolve_alias(None, "llama") == {}
    with pytest.raises(ConfigError, match="^llama: field 'precision' must be one of"):
        resolve_alias({"precision": "int5"}, "llama")


def test_configs_take_either_form_and_validate_the_new_fields(llama):
    assert (llama.config("smoke", {"precision": "int4"}).compute, llama.config("smoke", {"precision": "int4"}).quant) \
        == ("fp32", "int4")
    paper = llama.config("paper")
    assert (paper.compute, paper.quant, paper.precision) == ("bf16", "none", "bf16")
    old_4bit = llama.config("paper", {"precision": "int4"})  # meant fp32 + INT4 on the paper preset, still does
    assert (old_4bit.compute, old_4bit.quant, old_4bit.precision) == ("fp32", "int4", "int4")
    four_bit = llama.config("paper", {"quant": "int4"})  # the paper's 4-bit run
    assert (four_bit.compute, four_bit.quant, four_bit.precision) == ("bf16", "int4", "bf16+int4")
    for preset in ("smoke", "quick", "cpu"):  # bf16 is ~15x slower than fp32 on CPU: the CPU presets stay fp32
        assert (llama.config(preset).compute, llama.config(preset).quant) == ("fp32", "none")
    with pytest.raises(ConfigError, match="^llama: field 'compute' must be one of fp32, bf16 \\(got 'fp16'\\)$"):
        llama.config("smoke", {"compute": "fp16"})
    with pytest.raises(ConfigError, match="^llama: field 'quant' must be one of none, int2"):
        llama.config("smoke", {"quant": "int5"})
    moe = domains.get("moe")
    assert (moe.config("paper").compute, moe.config("smoke", {"precision": "bf16"}).compute) == ("bf16", "bf16")
    with pytest.raises(ConfigError, match="^moe: field 'quant' must be one of none \\(got 'int4'\\)$"):
        moe.config("smoke", {"quant": "int4"})


def test_the_policy_class_follows_the_quant_format_whatever_the_compute(llama):
    classes = {(c, q): llama.run_profile(llama.config("cpu", {"compute": c, "quant": q})).precision_class
               for c in ("fp32", "bf16") for q in ("none", "int4", "fp4_e1m2")}
    assert classes == {("fp32", "none"): "32-bit", ("bf16", "none"): "16-bit", ("fp32", "int4"): "low-bit",
                       ("bf16", "int4"): "low-bit", ("fp32", "fp4_e1m2"): "low-bit", ("bf16", "fp4_e1m2"): "low-bit"}
    assert precision_class({"precision": "int4"}) == "low-bit" and precision_class({"precision": "bf16"}) == "16-bit"
    moe = domains.get("moe")
    assert moe.run_profile(moe.config("paper")).precision_class == "16-bit"
    assert moe.run_profile(moe.config("cpu")).precision_class == "32-bit"


def test_a_tiny_bf16_int4_llama_run_trains_qat_under_bf16_autocast(llama):
    config = llama.config("smoke", {"compute": "bf16", "quant": "int4", "steps": 6, "eval_tokens": 1024})
    assert config.train_loop().autocast_dtype == torch.bfloat16
    model = build_model(config, vocab_size=config.vocab_size, seed=0)
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 7 * 2  # nano: 2 layers
    logger = ListLogger()
    ctx = RunContext(recipe="adam", hparams=default_hparams(llama, "adam", config), seed=0, logger=logger)
    result = llama.run(config, ctx)
    assert math.isfinite(result["val_ppl"]) and result["steps"] == 6
    assert (logger.info["compute"], logger.info["quant"], logger.info["precision"]) == ("bf16", "int4", "bf16+int4")
