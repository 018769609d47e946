"""`Chain`: a real ``torch.optim.Optimizer`` that applies gradient transforms, then steps a base optimizer."""
from __future__ import annotations

from collections import defaultdict
from itertools import chain as concat
from typing import Any, Sequence

import torch

from .base import InstrumentedOptimizer, evaluate_closure, make_stats
from .foreach_utils import global_norm
from .transforms import GradientTransform, StepContext

TRANSFORM_STATE_KEY = "transform_state"


class Chain(InstrumentedOptimizer):
    """Run ``transforms`` (in order) on the gradients, then ``base.step()``.

    The chain shares ``param_groups``, ``state`` and ``defaults`` with ``base``: LR schedulers, per-group
    learning rates and ``zero_grad`` act on both. The transforms' per-parameter state lives apart, in
    ``transform_state`` (base optimizers initialise their state when they find it empty). ``state_dict()`` is
    the base's, plus ``"transform_state"`` (by parameter index, like ``"state"``) and ``"counters"`` (the
    chain's global step). Transforms rewrite ``p.grad`` in place. Example::

        opt = Chain(torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0),
                    [AdaClip(0.999), AdaGN(0.7, 0.9), MomentumReset(1000)])
    """

    def __init__(self, base: torch.optim.Optimizer, transforms: Sequence[GradientTransform] = ()):
        if not isinstance(base, torch.optim.Optimizer):
            raise TypeError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        self.base = base
        self.transforms = tuple(transforms)
        super().__init__(base.param_groups, base.defaults)
        self._link_to_base()
        self.transform_state: defaultdict[torch.Tensor, dict] = defaultdict(dict)
        self._counters = {"step": 0}

    def _link_to_base(self) -> None:
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.defaults = self.base.defaults

    def _params_in_order(self) -> list[torch.Tensor]:
        """Parameters in ``state_dict`` index order."""
        return list(dict.fromkeys(concat.from_iterable(g["params"] for g in self.param_groups)))

    @torch.no_grad()
    def step(self, closure=None):
        """Apply the transforms to the gradients, then step the base optimizer. Returns the closure's loss."""
        loss = evaluate_closure(closure)
        self._counters["step"] += 1
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        stats = {} if self.collect_stats and grads else None
        before = global_norm(grads) if stats is not None else None
        ctx = StepContext(step=self._counters["step"], state=self.transform_state, base=self.base, stats=stats)
        if params:
            for transform in self.transforms:
                transform.apply(params, grads, ctx)
        self.base.step()
        if stats is not None:
            after = global_norm(grads) if self.transforms else before  # nothing changed the gradients
            self.last_stats = make_stats(before, after, stats.get("clip_fraction", 0.0), stats.get("reset", False))
        else:
            self.last_stats = None
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus the transforms' state and the chain's counters."""
        sd = super().state_dict()
        index = {p: i for i, p in enumerate(self._params_in_order())}
        sd[TRANSFORM_STATE_KEY] = {index[p]: dict(s) for p, s in self.transform_state.items() if p in index}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base optimizer (its own rules apply), relink, then restore the transforms' state
        (saved dtypes kept) and the counters."""
        self.base.load_state_dict(state_dict)
        self._link_to_base()
        self._after_load(state_dict)
        params = self._params_in_order()
        self.transform_state = defaultdict(dict)
        for i, saved in state_dict.get(TRANSFORM_STATE_KEY, {}).items():
            p = params[int(i)]
            self.transform_state[p] = {
                k: v.to(device=p.device, copy=True) if isinstance(v, torch.Tensor) else v for k, v in saved.items()}

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Chain([{inner}] -> {self.base!r})"
