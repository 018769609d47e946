"""`GroupedStepOptimizer`: the outer loop of the fused optimizers (`SPAM`, `StableSPAM`).

``step()`` partitions each parameter group's tensors with a gradient by backend and state dtype and hands each
partition to the subclass's ``_update(backend, params, grads, group, stats)``, which gathers its lists, computes the
per-tensor scalars and runs the passes over memory through the backend (`optimizers.backends`). The backend of
a device is chosen once per optimizer, at its first step on that device (`select_backend`); tensors it does
not take go to the reference `optimizers.backends.ForeachBackend`.
"""
from __future__ import annotations

import abc
import functools
import inspect
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from .backends import Backend, ForeachBackend
from .base import InstrumentedOptimizer, StatsAccumulator, evaluate_closure
from .chunked import ChunkedBackend
from .compiled import CompiledBackend
from .compiled import enabled as compile_enabled
from .foreach_utils import group_indices, state_dtype
from .native import NativeBackend, library

#: Values of `GroupedStepOptimizer.backend`.
BACKENDS = ("auto", "native", "chunked", "compiled", "foreach")
_REFERENCE = ForeachBackend()


def select_backend(device: torch.device, preference: str = "auto") -> Backend:
    """The backend for ``device``: on CPU the native kernels (`optimizers.native`) when they can be built, else
    the chunked path; on CUDA the passes compiled by torch.compile (`optimizers.compiled`; the reference when
    ``OPTIMIZERS_COMPILE=0``); elsewhere the multi-tensor reference. ``preference`` ("native", "chunked",
    "compiled", "foreach") asks for one; a CPU backend asked for on another device, or native kernels that cannot
    be built, give the next one down; "compiled" is honoured on any device."""
    if preference not in BACKENDS:
        raise ValueError(f"unknown backend {preference!r}; choose from {', '.join(BACKENDS)}")
    if preference == "compiled" or (preference == "auto" and device.type == "cuda" and compile_enabled()):
        return CompiledBackend()
    if device.type != "cpu" or preference == "foreach":
        return _REFERENCE
    if preference in ("auto", "native"):
        lib = library()
        if lib is not None:
            return NativeBackend(lib)
    return ChunkedBackend()


class GroupedStepOptimizer(InstrumentedOptimizer, metaclass=abc.ABCMeta):
    """Base class: a global step counter ``self._counters["step"]`` (set it in ``__init__``), the partitioned
    ``step()`` and the stats protocol's bookkeeping; subclasses implement ``_update``."""

    #: Which backend runs the step: "auto" (per device, see `select_backend`), or "native", "chunked",
    #: "compiled", "foreach" (the reference). The backend for a (device, setting) is chosen at its first step and kept.
    backend: str = "auto"

    @property
    def _backends(self) -> dict[tuple[torch.device, str], Backend]:
        # made on first use (also after unpickling: backends hold a loaded library and scratch buffers)
        found = self.__dict__.get("_backend_cache")
        if found is None:
            found = self.__dict__["_backend_cache"] = {}
        return found

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_backend_cache", None)
        return state

    def backends_in_use(self) -> list[str]:
        """Names of the backends chosen so far (one per device and setting), for reports."""
        return sorted({b.name for b in self._backends.values()})

    def backend_for(self, param: Tensor) -> Backend:
        """The backend that steps ``param`` (with its current gradient)."""
        key = (param.device, self.backend)
        chosen = self._backends.get(key)
        if chosen is None:
            chosen = self._backends[key] = select_backend(param.device, self.backend)
        return chosen if chosen.takes(param) else _REFERENCE

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient. Returns the closure's loss, if any."""
        loss = evaluate_closure(closure)
        self._counters["step"] += 1
        stats = StatsAccumulator() if self.collect_stats else None
        for group in self.param_groups:
            params, grads = [], []
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.is_sparse:
                        raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                    params.append(p)
                    grads.append(p.grad)
            backends = [self.backend_for(p) for p in params]
            for idx in group_indices((id(b), state_dtype(p)) for p, b in zip(params, backends)):
                self._update(backends[idx[0]], [params[i] for i in idx], [grads[i] for i in idx], group, stats)
        self.last_stats = stats.result() if stats is not None else None
        return loss

    @abc.abstractmethod
    def _update(self, backend: Backend, params: list[Tensor], grads: list[Tensor], group: dict,
                stats: StatsAccumulator | None) -> None:
        """The step for tensors of one group (with their gradients) that share a backend, a device and a state
        dtype."""


def takes_hparams(defaults: Mapping[str, Any]) -> Callable[[Callable], Callable]:
    """Decorate ``__init__(self, params, **hparams)`` of an optimizer whose hyper-parameters and defaults are
    the table ``defaults``: it also takes them positionally, in the table's order (as torch's optimizers take
    ``lr``), and shows the signature ``(self, params, name=default, ...)`` to ``help()`` and ``inspect``."""
    names = list(defaults)

    def decorate(init: Callable) -> Callable:
        @functools.wraps(init)
        def wrapper(self: Any, params: Any, *args: Any, **hparams: Any) -> None:
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__}() takes at most {len(names)} hyper-parameters "
                                f"positionally ({len(args)} given)")
            for name, value in zip(names, args):
                if name in hparams:
                    raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
                hparams[name] = value
            init(self, params, **hparams)

        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        parameters = [inspect.Parameter("self", positional), inspect.Parameter("params", positional)]
        parameters += [inspect.Parameter(name, positional, default=value) for name, value in defaults.items()]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return wrapper
    return decorate
