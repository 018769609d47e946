"""`InstrumentedOptimizer`: what every optimizer of this package adds to ``torch.optim.Optimizer``.

* The **stats protocol**: a bool attribute ``collect_stats`` (default False) and ``last_stats``. When
  ``collect_stats`` is True each ``step()`` sets ``last_stats`` to a dict of 0-dim float32 tensors with keys
  ``grad_norm_before``, ``grad_norm_after``, ``clip_fraction`` and ``reset`` (see `STAT_KEYS`); when False
  nothing extra is computed and ``last_stats`` is None.
* **Optimizer-wide counters** (the global step that drives resets and cosine schedules, ...), kept in
  ``self._counters`` and saved in ``state_dict()["counters"]`` so that a resumed run continues bit for bit.
* ``load_state_dict`` keeps the **saved dtype** of every state tensor. (``torch.optim.Optimizer`` casts floating
  state to the parameter's dtype, which would turn fp32 moments of a bf16 model into bf16 on resume.)
* **Parameter groups** given to the constructor or ``add_param_group`` are checked by the constructor's rules.
* torch's own hook machinery throughout: step, ``state_dict`` and ``load_state_dict`` hooks fire once each.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Mapping, cast

import torch

from .validation import validate_group

STAT_KEYS = ("grad_norm_before", "grad_norm_after", "clip_fraction", "reset")
COUNTERS_KEY = "counters"


def make_stats(grad_norm_before: torch.Tensor, grad_norm_after: torch.Tensor,
               clip_fraction: torch.Tensor | float, reset: bool) -> dict[str, torch.Tensor]:
    """The ``last_stats`` dict: every value a 0-dim float32 tensor on the gradients' device."""
    device = grad_norm_before.device
    as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device).reshape(())  # noqa: E731
    return {
        "grad_norm_before": as_tensor(grad_norm_before),
        "grad_norm_after": as_tensor(grad_norm_after),
        "clip_fraction": as_tensor(clip_fraction),
        "reset": as_tensor(1.0 if reset else 0.0),
    }


def evaluate_closure(closure):
    """Call a ``torch.optim`` closure with gradients enabled (``step()`` runs under ``no_grad``); None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class InstrumentedOptimizer(torch.optim.Optimizer):
    """Base class: stats protocol, optimizer-wide counters in ``state_dict()``, dtype-keeping ``load_state_dict``,
    parameter groups validated by the constructor's rules.

    Subclasses set ``self._counters`` (a dict of Python ints) in ``__init__`` and may set the class attribute
    ``counters_in_state_dict = False`` to keep them out of ``state_dict()`` (the reference variant of
    Stable-SPAM does, on purpose). ``state_dict``/``load_state_dict`` are torch's own (its hooks fire once, in
    torch's order); what this class adds is done inside them, so post-hooks see the complete result.
    """

    collect_stats: bool = False
    last_stats: dict[str, torch.Tensor] | None = None
    counters_in_state_dict: bool = True
    #: ``(owner, accepted hyper-parameters -> defaults, rules)`` for checking parameter groups; None: the class
    #: name, the optimizer's ``defaults`` and `optimizers.validation.RULES`. Recipe classes set it.
    group_spec: tuple[str, Mapping[str, Any], Mapping[str, Any]] | None = None

    def _group_spec(self) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
        return self.group_spec or (type(self).__name__, self.defaults, {})

    def _validate_group(self, param_group: Any) -> None:
        if isinstance(param_group, dict):
            params = param_group.get("params")
            if params is not None and not isinstance(params, (torch.Tensor, list)):
                param_group["params"] = list(params)     # read a generator once (torch lists it too)
            owner, accepted, rules = self._group_spec()
            validate_group(owner, len(self.param_groups), param_group, accepted, rules)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group`` after checking the group's hyper-parameters by the constructor's rules
        (``ValueError`` naming the key and the group's index)."""
        self._validate_group(param_group)
        super().add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict()`` plus ``"counters"`` (optimizer-wide step counters), added
        before the user's post-hooks run."""
        handle = self.register_state_dict_post_hook(_add_extras_hook, prepend=True)
        try:
            return super().state_dict()
        finally:
            handle.remove()

    def _add_state_dict_extras(self, state_dict: dict[str, Any]) -> None:
        if self.counters_in_state_dict:
            state_dict[COUNTERS_KEY] = dict(self._counters)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict`` (pre-hooks, checks, load, post-hooks), keeping each state tensor's saved
        dtype and restoring the counters before the post-hooks run."""
        # appended last, so it sees the state dict the user's pre-hooks produced
        handle = self.register_load_state_dict_pre_hook(_capture_loaded_hook)
        try:
            super().load_state_dict(state_dict)
        finally:
            handle.remove()
            self.__dict__.pop("_loading", None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict installs the loaded state through __setstate__, between its pre- and post-hooks
        loading = self.__dict__.get("_loading")
        if loading is None:
            super().__setstate__(state)        # unpickling, deepcopy
            return
        self._install_loaded(state)
        self._after_load(loading)

    def _install_loaded(self, state: dict[str, Any]) -> None:
        """Install torch's loaded ``{"state", "param_groups"}``."""
        super().__setstate__(state)

    def _after_load(self, state_dict: dict[str, Any]) -> None:
        keep_saved_dtypes(self, state_dict)
        if self.counters_in_state_dict and COUNTERS_KEY in state_dict:
            self._counters = dict(state_dict[COUNTERS_KEY])

    def __getstate__(self) -> dict[str, Any]:
        # torch keeps only defaults/state/param_groups; keep our attributes too (copy.deepcopy, pickle).
        # Hook dicts are left out (torch's __setstate__ recreates them), as are transient buffers.
        return {k: v for k, v in self.__dict__.items()
                if not k.startswith("_optimizer_") and k not in self._transient_attributes}

    _transient_attributes: tuple[str, ...] = ("_loading",)
    _loading: dict[str, Any]  # set only while load_state_dict runs (see __setstate__)


def _add_extras_hook(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
    cast(InstrumentedOptimizer, optimizer)._add_state_dict_extras(state_dict)


def _capture_loaded_hook(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
    cast(InstrumentedOptimizer, optimizer)._loading = state_dict


def keep_saved_dtypes(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
    """Undo torch's cast of loaded state tensors to the parameter dtype: give each the dtype it was saved with."""
    saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
    params = chain.from_iterable(g["params"] for g in optimizer.param_groups)
    for saved_id, param in zip(saved_ids, params):
        saved = state_dict["state"].get(saved_id)
        if not saved or param not in optimizer.state:
            continue
        state = optimizer.state[param]
        for key, value in saved.items():
            current = state.get(key)
            if isinstance(value, torch.Tensor) and isinstance(current, torch.Tensor) and current.dtype != value.dtype:
                state[key] = value.to(device=current.device, dtype=value.dtype, copy=True)


class StatsAccumulator:
    """Collects one step's stats over parameter groups and devices; `result` gives the ``last_stats`` dict."""

    def __init__(self) -> None:
        self._before: list[torch.Tensor] = []   # per-tensor norms before the transforms
        self._after: list[torch.Tensor] = []    # ... and after them
        self._clipped: list[torch.Tensor] = []  # number of clipped entries
        self._numel = 0
        self._reset = False

    def add(self, before: torch.Tensor, after: torch.Tensor, clipped: torch.Tensor | None, numel: int,
            reset: bool) -> None:
        """Add per-tensor norm vectors ``before``/``after``, a clipped-entry count, the entry count, a reset flag."""
        self._before.append(before.float().reshape(-1))
        self._after.append(after.float().reshape(-1))
        if clipped is not None:
            self._clipped.append(clipped.float().reshape(()))
        self._numel += numel
        self._reset = self._reset or reset

    def result(self) -> dict[str, torch.Tensor] | None:
        if not self._before:
            return None
        device = self._before[0].device
        cat = lambda xs: torch.cat([x.to(device) for x in xs])  # noqa: E731
        clipped = torch.stack([c.to(device) for c in self._clipped]).sum() if self._clipped else 0.0
        return make_stats(torch.linalg.vector_norm(cat(self._before)), torch.linalg.vector_norm(cat(self._after)),
                          clipped / max(self._numel, 1), self._reset)
