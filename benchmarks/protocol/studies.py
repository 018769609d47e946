"""The paper's studies (SPEC §3) for the built-in domains: study -> preset -> recipes, grid, LRs, seeds.

Each entry is a :class:`domains.base.StudySpec`. Recipes may carry their own hyper-parameters as
``NAME:key=value`` items (the one-at-a-time sweep of ``hparams``). Sources in the paper (arXiv version unless
said otherwise): ``main`` Tables 1/2, ``lr_sweep`` Figs 2/7, ``ablation`` Table 4, ``integration`` Table 3,
``low_bit`` Fig. 5, ``hparams`` Fig. 8, ``severity`` Fig. 9, ``moe`` thesis Table 4.2, ``rl`` review Table 13.

The llama grids vary the quantization format ``quant`` (``none`` is the 16-bit reference); the compute dtype comes
from the preset (:mod:`domains.lm.precision`). CPU presets compute in fp32 where the paper used BF16 (bf16 is ~15x
slower on CPU in torch), so fp32 stands for the 16-bit reference there and a 4-bit cell is fp32 + INT4; the
``paper`` preset computes in bf16, so its 4-bit cells are bf16 + INT4 / FP4 as in the paper, and uses the
paper's model size where it names one. (Before the split the grids varied ``precision``: fp32/bf16 by preset, or
a format; the runs they asked for are the same settings, under new run ids.)
"""

from __future__ import annotations

from typing import Mapping

from domains.base import StudySpec
from domains.lm.precision import NO_QUANT

Studies = Mapping[str, Mapping[str, StudySpec]]  # study -> preset -> StudySpec


def _per_preset(seeds: Mapping[str, int], **fields) -> dict[str, StudySpec]:
    """The same study at every preset, with that preset's seed count."""
    return {preset: StudySpec(seeds=n, **fields) for preset, n in seeds.items()}


# --- llama: the paper's LLaMA experiments -----------------------------------------------------------------

# quick: 3 seeds, so `python run_all.py` gives every comparison a confidence interval within its 15 minutes
LLAMA_SEEDS = {"smoke": 1, "quick": 3, "cpu": 3, "paper": 1}
LLAMA_MAIN = ("adam", "adam_clip", "adafactor", "spam", "stable_spam")
# beside stable_spam in the committed studies: whether the authors' published code's quirks (SPEC §1.1) matter
REFERENCE_ARM = ("stable_spam_ref",)
# `python run_all.py`'s default: three recipes, INT4 against the fp32 reference (a degradation view), 3 seeds
LLAMA_QUICK_MAIN = ("adam", "spam", "stable_spam")
# Fig. 2's optimizers (Adam, Adafactor, Adam-mini, SPAM) and Fig. 7's Stable-SPAM, at 16-bit, INT4 and FP4
LLAMA_SWEEP_RECIPES = ("adam", "spam", "stable_spam", "adafactor", "adam_mini")
LLAMA_ABLATION = ("adam", "adam+moret", "adam+moret+adaclip", "adam+moret+adagn", "adam+moret+adagn+adaclip",
                  "adam+moret+adagn+spikeclip", "adam+moret+gradclip+adaclip")
LLAMA_INTEGRATION = ("lion", "lion_stable", "adam_mini", "adam_mini_stable")
# cpu: the micro size's tuned 2e-3 (the `main` study's runs, so they are shared), 1e-3 below it and half-decades above
# it up to 2e-1, the range in which small-model proxies of large-model instabilities (Wortsman et al. 2023) see
# Adam turn and blow up
LLAMA_SWEEP_LRS = {"smoke": (1e-3, 1e-2), "quick": (1e-3, 3e-3, 1e-2), "cpu": (1e-3, 2e-3, 6e-3, 2e-2, 6e-2, 2e-1),
                   "paper": (1e-4, 3e-4, 5e-4, 7e-4, 9e-4, 3e-3)}
# Fig. 8: Stable-SPAM with one hyper-parameter moved at a time. Reset intervals: the paper's 250..5000 of its
# 20k steps at the paper preset, the same fractions of the run (1/80..1/4, at least 5) at the others
# (llama presets: smoke 140, quick 140, cpu 1000 steps); smoke keeps the first two values of each.
LLAMA_HPARAM_VALUES = {
    "smoke": {"gamma1": (0.5, 0.7), "gamma2": (0.8, 0.9), "gamma3": (0.9, 0.99), "reset_interval": (5, 8)},
    "quick": {"gamma1": (0.5, 0.7, 0.9), "gamma2": (0.8, 0.9, 0.999), "gamma3": (0.9, 0.99, 0.999),
              "reset_interval": (4, 7, 18, 35)},
    "cpu": {"gamma1": (0.5, 0.7, 0.9), "gamma2": (0.8, 0.9, 0.999), "gamma3": (0.9, 0.99, 0.999),
            "reset_interval": (13, 25, 50, 125, 250)},
    "paper": {"gamma1": (0.5, 0.7, 0.9), "gamma2": (0.8, 0.9, 0.999), "gamma3": (0.9, 0.99, 0.999),
              "reset_interval": (250, 500, 1000, 2500, 5000)},
}


def _one_at_a_time(values: Mapping[str, tuple]) -> tuple[str, ...]:
    return ("stable_spam",) + tuple(f"stable_spam:{key}={value:g}" for key, options in values.items()
                                    for value in options)


def _llama_grid(preset: str, paper_size: str | None = None, **fields) -> dict[str, tuple]:
    if preset == "paper" and paper_size:
        fields["size"] = (paper_size,)
    return {key: tuple(values) for key, values in fields.items()}


def _lr_sweep(preset: str, seeds: int) -> StudySpec:
    """Figs 2/7: the full sweep at cpu and paper; smoke and quick sweep three recipes at 16-bit and INT4."""
    full = preset in ("cpu", "paper")
    quant = (NO_QUANT, "int4", "fp4_e1m2") if full else (NO_QUANT, "int4")
    return StudySpec(recipes=LLAMA_SWEEP_RECIPES if full else LLAMA_QUICK_MAIN, lrs=LLAMA_SWEEP_LRS[preset],
                     seeds=seeds, grid=_llama_grid(preset, "60M", quant=quant))


LLAMA: Studies = {
    "main": {p: StudySpec(
        recipes=LLAMA_QUICK_MAIN if p == "quick" else
        LLAMA_MAIN + (("adam_mini",) + REFERENCE_ARM if p in ("cpu", "paper") else ()),
        grid=_llama_grid(p, quant=("int4", NO_QUANT) if p == "quick" else ("int4", "fp4_e1m2", NO_QUANT)),
        only={"adam_mini": {"quant": (NO_QUANT,)}},  # Adam-mini is in the paper's 16-bit table only
        seeds=n) for p, n in LLAMA_SEEDS.items()},
    "lr_sweep": {p: _lr_sweep(p, n) for p, n in LLAMA_SEEDS.items()},
    "ablation": {p: StudySpec(
        recipes=LLAMA_ABLATION, seeds=n,
        grid=_llama_grid(p, "60M", quant=("fp4_e1m2", NO_QUANT))) for p, n in LLAMA_SEEDS.items()},
    "integration": {p: StudySpec(
        recipes=LLAMA_INTEGRATION, seeds=n,
        grid=_llama_grid(p, "60M", quant=("int4", "fp4_e1m2"))) for p, n in LLAMA_SEEDS.items()},
    "low_bit": {p: StudySpec(
        recipes=("adam", "stable_spam"), seeds=n,
        grid=_llama_grid(p, "60M", quant=("int2", "int3", "int4"))) for p, n in LLAMA_SEEDS.items()},
    "hparams": {p: StudySpec(
        recipes=_one_at_a_time(LLAMA_HPARAM_VALUES[p]), seeds=n,
        grid=_llama_grid(p, "60M", quant=("fp4_e1m2",))) for p, n in LLAMA_SEEDS.items()},
}

# --- moe: OLMoE, Adam vs Stable-SPAM (claim C11); `main` is the same runs ----------------------------------

_MOE = _per_preset({"smoke": 1, "quick": 3, "cpu": 3, "paper": 3}, recipes=("adam", "stable_spam"))
MOE: Studies = {"moe": _MOE, "main": _MOE}

# --- mujoco: Adam vs Stable-SPAM on the paper's three tasks (claim C12); `main` is the same runs -----------

RL_ENVS = ("HalfCheetah", "Ant", "Hopper")
RL_QUICK_ENVS = ("HalfCheetah", "Hopper")  # Ant, the slowest, left out of `python run_all.py`'s 15 minutes
# PPO (the cpu preset) clips the global gradient norm to 0.5 before the optimizer sees it (the RL Zoo's setting), so
# AdaClip and AdaGN would only ever see pre-clipped gradients; the cpu study runs both arms: the zoo's clip, and
# none (NO_PPO_CLIP), the optimizer seeing raw gradients as it does under the paper's SAC, which clips nothing.
NO_PPO_CLIP = 1e9
PPO_CLIP_ARMS = (0.5, NO_PPO_CLIP)
_RL = {**_per_preset({"smoke": 1, "paper": 5}, recipes=("adam", "stable_spam"), grid={"env": RL_ENVS}),
       "cpu": StudySpec(recipes=("adam", "stable_spam"), grid={"env": RL_ENVS, "max_grad_norm": PPO_CLIP_ARMS},
                        seeds=3),
       "quick": StudySpec(recipes=("adam", "stable_spam"), grid={"env": RL_QUICK_ENVS}, seeds=3)}
MUJOCO: Studies = {"rl": _RL, "main": _RL}

# --- weather: anomaly severity S at fraction A = 0.1 (= `main`), and the fraction A at S = 2 ---------------

WEATHER_SEEDS = {"smoke": 1, "quick": 3, "cpu": 10, "paper": 10}
WEATHER_RECIPES = ("adam", "spam", "stable_spam")
SEVERITIES = (0.0, 2.0, 5.0)  # Fig. 9
QUICK_SEVERITIES = (0.0, 2.0)  # `python run_all.py`: clean vs anomalous (at S = 5 short runs near the trivial forecast)
_SEVERITY = {preset: StudySpec(recipes=WEATHER_RECIPES, seeds=n, grid={
    "severity": QUICK_SEVERITIES if preset == "quick" else SEVERITIES, "anomaly_fraction": (0.1,)})
    for preset, n in WEATHER_SEEDS.items()}
_FRACTION = _per_preset({preset: min(n, 5) for preset, n in WEATHER_SEEDS.items()}, recipes=WEATHER_RECIPES,
                        grid={"severity": (2.0,), "anomaly_fraction": (0.0, 0.05, 0.1)})
WEATHER: Studies = {"severity": _SEVERITY, "main": _SEVERITY, "fraction": _FRACTION}

PAPER_STUDIES: Mapping[str, Studies] = {"llama": LLAMA, "moe": MOE, "mujoco": MUJOCO, "weather": WEATHER}
