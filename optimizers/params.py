"""Normalising what users pass as ``params``: ``model.parameters()``, ``model.named_parameters()`` or a list of
parameter-group dicts (whose ``"params"`` may themselves be named)."""
from __future__ import annotations

from typing import Any, Iterable

import torch


def _is_named(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)


def _as_list(params: Any) -> list:
    if isinstance(params, torch.Tensor):
        return [params]
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    return items


def strip_names(params: Iterable) -> list:
    """Parameters or parameter groups with any names removed, ready for a ``torch.optim.Optimizer``."""
    items = _as_list(params)
    if isinstance(items[0], dict):
        return [{**g, "params": [p[1] if _is_named(p) else p for p in _as_list(g["params"])]} for g in items]
    return [p[1] if _is_named(p) else p for p in items]


def named(params: Iterable) -> tuple[list[tuple[str, torch.Tensor]], bool]:
    """``(name, tensor)`` pairs for optimizers that need names (Adam-mini), and whether names were given.

    Unnamed tensors get the names ``param_0, param_1, ...``. Parameter-group dicts are not supported here.
    """
    items = _as_list(params)
    if isinstance(items[0], dict):
        raise ValueError("this recipe needs model.named_parameters(), not a list of parameter groups")
    if all(_is_named(p) for p in items):
        return list(items), True
    return [(f"param_{i}", p[1] if _is_named(p) else p) for i, p in enumerate(items)], False
