"""The domain adapter contract.

A *domain* is a workload (model + data + metric) that the engine can train with any optimizer recipe.
It is kept separate from the optimizer contract (AlgoPerf-style): a domain never names an optimizer in
its code; it receives a recipe name and hyper-parameters and builds the optimizer only through
``optimizers.build``. It reports only through the :class:`RunLogger` the engine hands it.

Two kinds of domain fit this contract:

* step-based supervised training (LLaMA, OLMoE, PatchTST, the noisy quadratic) reuses
  :func:`domains.training.loop.train`, which owns the loop, the LR schedule, telemetry, divergence detection,
  checkpoint/resume and the progress bar;
* libraries that own their loop (stable-baselines3) call the logger from their callbacks and raise
  :class:`Diverged` themselves.

Adding a domain = one file with a :class:`Domain` subclass + one call to ``domains.register``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

import torch

from domains.fields import ConfigError, coerce_field

__all__ = ["PRESETS", "PRECISION_CLASSES", "Diverged", "ConfigError", "RunLogger", "RunContext", "RunProfile",
           "StudySpec", "Domain"]

PRESETS = ("smoke", "quick", "cpu", "paper")
# What a run computes in, as optimizer hyper-parameters depend on it: 4-bit and below (QAT formats), 16-bit (bf16)
# or 32-bit (fp32; the engine's policy treats it as the 16-bit stand-in it is on CPUs).
PRECISION_CLASSES = ("low-bit", "16-bit", "32-bit")


class Diverged(Exception):
    """Raised by a domain when training diverged; the engine records ``status = diverged``, not a crash."""

    def __init__(self, step: int, reason: str):
        super().__init__(f"diverged at step {step}: {reason}")
        self.step = step
        self.reason = reason


class RunLogger(Protocol):
    """Where a domain reports. The engine supplies the implementation (buffered, written atomically)."""

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        """Per-step training telemetry: loss, lr, grad_norm_before, grad_norm_after, clip_fraction, reset, ..."""

    def log_eval(self, step: int, values: Mapping[str, float]) -> None:
        """Evaluation metrics measured at ``step`` (validation loss, mean return, ...)."""

    def log_info(self, **info: Any) -> None:
        """Free-form run metadata (parameter count, algorithm, tokens/s, ...); JSON-serialisable values."""

    def snapshot(self) -> dict:
        """Everything logged so far, for a checkpoint (plain Python containers of numbers and strings)."""

    def restore(self, snapshot: dict) -> None:
        """Replace the buffered records with a snapshot taken by :meth:`snapshot` (resume)."""


@dataclass
class RunContext:
    """What the engine hands a domain for one run."""

    recipe: str
    hparams: dict
    seed: int
    logger: RunLogger
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workdir: Path | None = None  # per-run scratch folder; checkpoints live here (None: no checkpoints)
    progress: bool = False  # show a progress bar
    progress_label: str = ""  # the bar's label (the engine: domain, grid point, recipe, seed); "" -> the recipe
    compile: bool = False  # train through torch.compile (an execution choice like the device: not the run's identity)


@dataclass(frozen=True)
class RunProfile:
    """What a domain declares about one run so that the engine can choose every recipe's hyper-parameters.

    The engine's policy (:mod:`benchmarks.protocol.hparams`) maps (recipe, profile) to hyper-parameters: reset
    intervals and warm-ups as the paper's fractions of ``optimizer_steps``, ``total_T``, gammas by
    ``precision_class``, the LR as ``base_lr`` times the recipe family's multiplier, Adam-mini's ``dim`` and
    ``n_heads`` from ``hidden_size`` and ``heads``. A domain never names a recipe here.

    * ``optimizer_steps``: how many optimizer steps the run takes (its budget counted in optimizer steps);
    * ``precision_class``: one of :data:`PRECISION_CLASSES`;
    * ``hidden_size``, ``heads``: the model's width and attention heads (None: not a Transformer);
    * ``base_lr``: the domain's tuned peak LR for Adam-like recipes at this size;
    * ``settings``: the domain's own, recipe-independent settings per optimizer family, set wherever a recipe
      of that family takes the hyper-parameter, e.g. ``{"adam-like": {"eps": 1e-5}}`` (SB3's PPO builds its
      Adam with eps 1e-5).
    """

    optimizer_steps: int
    precision_class: str = "32-bit"
    hidden_size: int | None = None
    heads: int | None = None
    base_lr: float = 1e-3
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.optimizer_steps, bool) or not isinstance(self.optimizer_steps, int) \
                or self.optimizer_steps < 0:
            raise ValueError(f"RunProfile.optimizer_steps must be an integer >= 0, got {self.optimizer_steps!r}")
        if self.precision_class not in PRECISION_CLASSES:
            raise ValueError(f"RunProfile.precision_class must be one of {', '.join(PRECISION_CLASSES)}, "
                             f"got {self.precision_class!r}")
        if not self.base_lr > 0:
            raise ValueError(f"RunProfile.base_lr must be > 0, got {self.base_lr!r}")


@dataclass(frozen=True)
class StudySpec:
    """A named study a domain takes part in: which recipes, LRs, config grid and seeds per preset."""

    recipes: tuple[str, ...]
    grid: Mapping[str, tuple] = field(default_factory=dict)  # config field -> values (a grid)
    lrs: tuple[float, ...] | None = None  # None: each recipe's default LR
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # recipe -> extra hparams
    seeds: int = 1
    # recipe -> config field -> the values it runs at (e.g. Adam-mini at 16-bit only, as in the paper's tables);
    # applies to the study's own recipes, not to ones given with --optimizers
    only: Mapping[str, Mapping[str, tuple]] = field(default_factory=dict)


class Domain(ABC):
    """Base class of every domain adapter.

    Subclasses set ``name``, ``metric``, ``higher_is_better``, ``Config`` (a dataclass whose fields all
    have defaults) and ``presets`` (preset name -> field overrides for ``smoke``, ``quick``, ``cpu`` and
    ``paper``), and implement :meth:`run`.

    **Regime gate.** A domain that implements :meth:`baselines` gets the suite's regime gate: the engine stores
    the values with every run, and a cell counts as *in regime* only when its trained models beat the strongest
    of the gating baselines (``gate_baselines``; None: all of them) by the suite's margin. A baseline is the
    value of ``metric`` (same units, same direction) that a trivial predictor reaches on exactly the data
    :meth:`run` scores the model on. A domain without baselines (the default, ``{}``) is "regime unknown".

    **Optimizer hyper-parameters.** A domain never chooses them: it declares its run (:meth:`run_profile`: optimizer
    steps, precision class, model shape, the peak LR tuned for Adam) and the engine's policy sets every recipe's
    (:mod:`benchmarks.protocol.hparams`), so reset intervals, ``total_T`` and the gammas follow the run in every
    domain alike. :meth:`run` receives them complete in ``ctx.hparams``.
    """

    name: ClassVar[str]
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = False
    Config: ClassVar[type]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]]
    # The run length: the config field that holds it and its unit. The engine applies a suite's budget by
    # setting this field before calling run(); everything derived from the length follows it.
    budget_field: ClassVar[str] = "steps"
    budget_unit: ClassVar[str] = "optimizer steps"
    default_study: ClassVar[str] = "main"  # what `run_all.py` runs for this domain when no --study is given
    # The names among baselines() that gate the regime (None: all of them). Reference points that are not
    # trivial (e.g. a fitted linear forecaster) are returned by baselines() but left out here.
    gate_baselines: ClassVar[tuple[str, ...] | None] = None
    # "log" when ``metric`` is the log of the quantity the margin is meant for (a loss in nats, whose gate is on
    # perplexity = exp(loss)); "linear" (the default) applies the margin to the metric itself.
    gate_scale: ClassVar[str] = "linear"
    # Config fields added after runs were stored, each with the value those runs had: at that value the field is
    # left out of the run id, so the stored runs keep their ids (and are not run again).
    identity_omits: ClassVar[Mapping[str, Any]] = {}

    def config(self, preset: str = "quick", overrides: Mapping[str, Any] | None = None):
        """The preset's config with ``overrides`` applied; raises ConfigError naming a bad field or value."""
        if preset not in self.presets:
            raise ConfigError(f"domain {self.name!r} has no preset {preset!r} (choose from {', '.join(self.presets)})")
        values = dict(self.presets[preset])
        for key, value in (overrides or {}).items():
            values[key] = coerce_field(self.Config, key, value, where=self.name)
        cfg = self.Config(**values)
        self.validate(cfg)
        return cfg

    def validate(self, config) -> None:
        """Check field values beyond their types; raise ConfigError naming the field. Default: accept."""

    def run_profile(self, config) -> RunProfile:
        """What this run is, for the engine's hyper-parameter policy (:class:`RunProfile`).

        Default: the budget field read as the run's optimizer steps, 32-bit, no model shape, base LR 1e-3. Declare
        it when the budget is counted in something else (environment steps), to give the model's precision and
        shape, and the peak LR tuned for Adam on this workload.
        """
        if self.budget_unit != "optimizer steps":
            raise NotImplementedError(f"domain {self.name!r} counts its budget in {self.budget_unit}: declare "
                                      f"run_profile(config) with the run's optimizer steps")
        return RunProfile(optimizer_steps=int(getattr(config, self.budget_field)))

    def studies(self) -> Mapping[str, Mapping[str, StudySpec]]:
        """Named studies: study name -> preset name -> StudySpec. Default: none."""
        return {}

    def baselines(self, config, seed: int) -> dict[str, float]:
        """Values of ``self.metric`` that trivial predictors reach on exactly this run's evaluation data.

        Same units and direction as ``self.metric``, on the same validation/test data, windows, episodes and
        reset seeds as :meth:`run` scores the model on; keys are short baseline names (``"bigram"``,
        ``"persistence"``, ...). Deterministic in ``(config, seed)`` and cheap enough to call once per run and
        again at report time (implementations cache within the process, keyed by what a value depends on).
        Default: ``{}`` (regime unknown).
        """
        return {}

    def regime_note(self, config: Mapping[str, Any]) -> str:
        """For a cell of a stored run's ``config`` (a mapping of its fields) that is out of regime: what scale
        would put it in regime, in one sentence for the report ("" when the domain has nothing to say)."""
        return ""

    @abstractmethod
    def run(self, config, ctx: RunContext) -> dict[str, float]:
        """Train and evaluate once; return final metrics (must include ``self.metric``).

        Raise :class:`Diverged` when training diverged. Any other exception marks the run failed.
        """
