"""Training domains (workloads) the benchmark engine drives.

``domains.get(name)`` returns a registered adapter (a :class:`domains.base.Domain` instance);
``domains.available()`` lists the names; ``domains.register`` adds one from the user's own file::

    import domains
    from domains.base import Domain

    @domains.register
    class MyDomain(Domain):
        name = "mine"
        ...

Built-in domains are imported lazily, so ``import domains`` does not pull in transformers or MuJoCo.
"""

from __future__ import annotations

import importlib
import importlib.util

from domains.base import ConfigError, Diverged, Domain, RunContext, RunLogger, StudySpec

__all__ = ["get", "available", "register", "unregister", "Domain", "RunContext", "RunLogger", "Diverged", "ConfigError", "StudySpec"]

_BUILT_IN = {
    "quadratic": "domains.quadratic:QuadraticDomain",
    "llama": "domains.llama:LlamaDomain",
    "weather": "domains.weather:WeatherDomain",
    "mujoco": "domains.mujoco:MujocoDomain",
    "moe": "domains.moe:MoeDomain",
}
# name -> "module:Class" (built-ins, imported on first use) or an instance (registered by the user or loaded)
_REGISTRY: dict[str, object] = dict(_BUILT_IN)


def register(domain):
    """Register a Domain subclass or instance under its ``name``; returns it (usable as a decorator)."""
    instance = domain() if isinstance(domain, type) else domain
    if not isinstance(instance, Domain):
        raise TypeError(f"register() takes a domains.base.Domain subclass or instance, not {type(instance).__name__}")
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("a domain needs a non-empty string `name`")
    _REGISTRY[name] = instance
    return domain


def unregister(name: str) -> None:
    """Remove a domain registered with :func:`register` (built-in domains stay); unknown names are ignored."""
    if name in _BUILT_IN:
        _REGISTRY[name] = _BUILT_IN[name]
    else:
        _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Names of the registered domains whose module is present."""
    names = []
    for name, entry in _REGISTRY.items():
        if isinstance(entry, str) and importlib.util.find_spec(entry.split(":")[0]) is None:
            continue
        names.append(name)
    return names


def get(name: str) -> Domain:
    """The registered domain adapter called ``name``; ValueError naming the known ones otherwise."""
    entry = _REGISTRY.get(name)
    if entry is None or (isinstance(entry, str) and importlib.util.find_spec(entry.split(":")[0]) is None):
        raise ValueError(f"unknown domain {name!r} (available: {', '.join(available())})")
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), class_name)()
        _REGISTRY[name] = entry
    return entry
