"""`Chain`: a real ``torch.optim.Optimizer`` that applies gradient transforms, then steps a base optimizer."""
from __future__ import annotations

import inspect
from collections import defaultdict
from itertools import chain as concat
from typing import Any, Callable, Sequence

import torch

from .base import InstrumentedOptimizer, evaluate_closure, make_stats
from .foreach_utils import global_norm
from .transforms import GradientTransform, StepContext

TRANSFORM_STATE_KEY = "transform_state"


def unhooked_step(optimizer: torch.optim.Optimizer) -> Callable[..., Any]:
    """``optimizer.step`` without torch's hook wrapper: the chain's own ``step()`` already ran the global and
    per-instance step hooks once, so the base's must not run them again."""
    fn = type(optimizer).step
    while getattr(fn, "hooked", False) and hasattr(fn, "__wrapped__"):
        fn = getattr(fn, "__wrapped__")
    return fn.__get__(optimizer)


class Chain(InstrumentedOptimizer):
    """Run ``transforms`` (in order) on the gradients, then step ``base``.

    The chain shares ``param_groups``, ``state`` and ``defaults`` with ``base``: LR schedulers, per-group
    learning rates and ``zero_grad`` act on both; ``add_param_group`` and ``load_state_dict`` go through the
    base's own rules. The transforms' per-parameter state lives apart, in ``transform_state`` (base optimizers
    initialise their state when they find it empty). ``state_dict()`` is the base's, plus ``"transform_state"``
    (by parameter index, like ``"state"``) and ``"counters"`` (the chain's global step).

    ``p.grad`` is left as the caller set it: the transforms work on per-parameter buffers (allocated once,
    reused every step) that stand in for ``p.grad`` during the base's step only. Step, ``state_dict`` and
    ``load_state_dict`` hooks are torch's, registered on the chain, and fire once per call. Example::

        opt = Chain(torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0),
                    [AdaClip(0.999), AdaGN(0.7, 0.9), MomentumReset(1000)])
    """

    _transient_attributes = InstrumentedOptimizer._transient_attributes + ("_grad_buffers",)

    def __init__(self, base: torch.optim.Optimizer, transforms: Sequence[GradientTransform] = ()):
        if not isinstance(base, torch.optim.Optimizer):
            raise TypeError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        self.base = base
        self.transforms = tuple(transforms)
        super().__init__(base.param_groups, base.defaults)   # torch's checks over the base's groups
        self._link_to_base()
        self.transform_state: defaultdict[torch.Tensor, dict] = defaultdict(dict)
        self._counters = {"step": 0}
        self._grad_buffers: dict[torch.Tensor, torch.Tensor] = {}
        self._linked = True

    def _link_to_base(self) -> None:
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.defaults = self.base.defaults

    def _params_in_order(self) -> list[torch.Tensor]:
        """Parameters in ``state_dict`` index order."""
        return list(dict.fromkeys(concat.from_iterable(g["params"] for g in self.param_groups)))

    def prepare_group(self, param_group: dict[str, Any]) -> list[dict[str, Any]]:
        """The group(s) to hand the base's ``add_param_group`` for a validated user group (recipes override
        this to translate names or choose a kernel); by default the group itself."""
        return [param_group]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Check the group by the constructor's rules, then add it to the base (its own ``add_param_group``)."""
        if not self.__dict__.get("_linked"):       # torch's __init__ re-adding the base's groups
            torch.optim.Optimizer.add_param_group(self, param_group)
            return
        self._validate_group(param_group)
        for group in self.prepare_group(param_group) if isinstance(param_group, dict) else [param_group]:
            self.base.add_param_group(group)

    def _working_grads(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Reusable buffers, one per parameter, holding a copy of the caller's gradients."""
        buffers, grads = [], []
        for p in params:
            g, buf = p.grad, self._grad_buffers.get(p)
            if g is None:
                raise RuntimeError("Chain._working_grads takes parameters that have gradients")
            grads.append(g)
            if buf is None or buf.shape != g.shape or buf.dtype != g.dtype or buf.device != g.device:
                buf = torch.empty_like(g, memory_format=torch.contiguous_format)
                self._grad_buffers[p] = buf
            buffers.append(buf)
        torch._foreach_copy_(buffers, grads)
        return buffers

    @torch.no_grad()
    def step(self, closure=None):
        """Apply the transforms to copies of the gradients, step the base optimizer on them, and give ``p.grad``
        back as the caller left it. Returns the closure's loss."""
        loss = evaluate_closure(closure)
        self._counters["step"] += 1
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        originals = [p.grad for p in params]
        stats = {} if self.collect_stats and params else None
        before = global_norm(originals) if stats is not None else None
        ctx = StepContext(step=self._counters["step"], state=self.transform_state, base=self.base, stats=stats)
        grads = originals
        try:
            if params and self.transforms:
                grads = self._working_grads(params)
                for p, g in zip(params, grads):
                    p.grad = g
                for transform in self.transforms:
                    transform.apply(params, grads, ctx)
            saved = [(group, key, group[key]) for group, key, _ in ctx.overrides]
            for group, key, value in ctx.overrides:
                group[key] = value
            try:
                unhooked_step(self.base)()
            finally:
                for group, key, value in reversed(saved):
                    group[key] = value
        finally:
            for p, g in zip(params, originals):
                p.grad = g
        if stats is not None:
            after = global_norm(grads) if self.transforms else before  # nothing changed the gradients
            self.last_stats = make_stats(before, after, stats.get("clip_fraction", 0.0), stats.get("reset", False))
        else:
            self.last_stats = None
        return loss

    def _add_state_dict_extras(self, state_dict: dict[str, Any]) -> None:
        """The chain's counters and the transforms' state (by parameter index, like ``"state"``)."""
        super()._add_state_dict_extras(state_dict)
        index = {p: i for i, p in enumerate(self._params_in_order())}
        state_dict[TRANSFORM_STATE_KEY] = {index[p]: dict(s) for p, s in self.transform_state.items() if p in index}

    def _install_loaded(self, state: dict[str, Any]) -> None:
        """Install torch's loaded state through the base's own ``__setstate__`` (e.g. Adam's group defaults),
        then share it again."""
        self.base.__setstate__(state)
        self._link_to_base()

    def _after_load(self, state_dict: dict[str, Any]) -> None:
        """Restore saved dtypes, the counters and the transforms' state."""
        super()._after_load(state_dict)
        params = self._params_in_order()
        self.transform_state = defaultdict(dict)
        for i, saved in state_dict.get(TRANSFORM_STATE_KEY, {}).items():
            p = params[int(i)]
            self.transform_state[p] = {
                k: v.to(device=p.device, copy=True) if isinstance(v, torch.Tensor) else v for k, v in saved.items()}

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles only the base's defaults/state/param_groups; keep its other attributes (Lion's
        # decoupled_wd, Adam-mini's dim, ...) too, except hook dicts and generators
        state = super().__getstate__()
        torch_keys = {"defaults", "state", "param_groups"}
        state["_base_attributes"] = {k: v for k, v in vars(self.base).items() if k not in torch_keys
                                     and not k.startswith("_optimizer_") and not inspect.isgenerator(v)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        base_attributes = state.pop("_base_attributes", None)
        super().__setstate__(state)
        if base_attributes is not None:
            vars(self.base).update(base_attributes)
        self.__dict__.setdefault("_grad_buffers", {})

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Chain([{inner}] -> {self.base!r})"
