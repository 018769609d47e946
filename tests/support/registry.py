"""Registering a domain for one test without leaving it in the global registry."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import domains


@contextmanager
def registered(domain) -> Iterator[domains.Domain]:
    """Register ``domain`` (a Domain subclass or instance) for the block; the registry is as before afterwards."""
    instance = domains.register(domain)
    name = instance.name
    try:
        yield domains.get(name)
    finally:
        domains.unregister(name)
