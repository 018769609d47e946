"""Normalising what users pass as ``params``: ``model.parameters()``, ``model.named_parameters()`` or a list of
parameter-group dicts (whose ``"params"`` may themselves be named). Errors are torch's own, with torch's types and
messages, so a recipe refuses exactly what ``torch.optim.Adam`` refuses."""
from __future__ import annotations

from typing import Any, Iterable

import torch

NOT_ITERABLE = "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
NAMES_MISSING = "all optimizer params should be with/without names. Some param names are missing"


def is_named(item: Any) -> bool:
    """Whether ``item`` is a ``(name, tensor)`` pair as ``named_parameters()`` yields."""
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)


def _as_list(params: Any) -> list:
    if isinstance(params, torch.Tensor):
        raise TypeError(NOT_ITERABLE + torch.typename(params))
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    return items


def torch_params(params: Iterable) -> list:
    """``params`` as a list for a ``torch.optim.Optimizer``: tensors, ``(name, tensor)`` pairs (torch keeps the
    names as ``param_names`` in ``state_dict()``) or group dicts. A bare tensor raises torch's ``TypeError``."""
    return _as_list(params)


def named(params: Iterable) -> tuple[list[tuple[str, torch.Tensor]], bool]:
    """``(name, tensor)`` pairs for optimizers that need names (Adam-mini), and whether names were given.

    Unnamed tensors get the names ``param_0, param_1, ...``; a mix of named and unnamed tensors raises torch's
    ``ValueError``. Parameter-group dicts are not supported here.
    """
    items = _as_list(params)
    if isinstance(items[0], dict):
        raise ValueError("this recipe needs model.named_parameters(), not a list of parameter groups")
    flags = [is_named(p) for p in items]
    if all(flags):
        return list(items), True
    if any(flags):
        raise ValueError(NAMES_MISSING)
    return [(f"param_{i}", p) for i, p in enumerate(items)], False
