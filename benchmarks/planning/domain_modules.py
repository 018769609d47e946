"""User domains from outside the repository: ``--domain-module FILE.py`` or ``--domain-module package.module``
(and the suite file key ``domain_module``).

Loading a module runs it once; a module that calls ``domains.register(MyDomain)`` (or decorates the class with
``@domains.register``) adds its domain to ``domains.available()`` for this process. A run's spec names its
domain class as ``"<module or file>:QualName"`` (:func:`domain_class_ref`), so a spawned worker or a Ray task,
which starts without the user's module, loads it again with :func:`import_domain_class`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

import domains
from benchmarks.errors import BadInput

FILE_MODULE_PREFIX = "ssb_user_domain_"  # module names given to files loaded by path
_FILE_OF_MODULE: dict[str, str] = {}  # module name -> the file it was loaded from


def load_domain_modules(refs: Iterable[str], origin: str = "--domain-module") -> list[str]:
    """Load every module in ``refs`` (paths or dotted names); returns the domains they registered.

    BadInput (one line) when a file is missing, a module cannot be imported or raises, or a module registers
    no domain.
    """
    added = []
    for ref in refs:
        before = _registered()
        try:
            load_module(ref)
        except BadInput:
            raise
        except Exception as exc:  # the user's module failed: name it and the error, in one line
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise BadInput(f"{origin} {ref}: loading it failed: {message}") from None
        new = [name for name in _registered() if name not in before]
        if not new and not _defines_a_registered_domain(ref):
            raise BadInput(f"{origin} {ref}: the module registers no domain (call domains.register(MyDomain) in it)")
        added += new
    return added


def load_module(ref: str) -> ModuleType:
    """The module ``ref``: a ``.py`` file path (loaded once per path) or a dotted module name (imported)."""
    if _is_path(ref):
        return _load_file(Path(ref))
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        if exc.name and ref.startswith(exc.name):
            raise BadInput(f"--domain-module {ref}: no such file or module") from None
        raise


def domain_class_ref(domain: domains.Domain) -> str:
    """``"module:QualName"`` of ``domain``'s class; a class from a file loaded by path gets the file instead
    of its synthetic module name, so a fresh process can load it again."""
    cls = type(domain)
    module = _FILE_OF_MODULE.get(cls.__module__, cls.__module__)
    return f"{module}:{cls.__qualname__}"


def import_domain_class(ref: str) -> type:
    """The class named by a :func:`domain_class_ref` string (loading the file or importing the module)."""
    module_ref, _, qualname = ref.rpartition(":")
    target = load_module(module_ref)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _is_path(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or "\\" in ref


def _load_file(path: Path) -> ModuleType:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise BadInput(f"--domain-module {path}: no such file")
    name = FILE_MODULE_PREFIX + path.stem.replace("-", "_") + "_" + hashlib.sha256(str(path).encode()).hexdigest()[:8]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing: dataclasses and pickling look the module up by name
    _FILE_OF_MODULE[name] = str(path)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        _FILE_OF_MODULE.pop(name, None)
        raise
    return module


def _registered() -> list[str]:
    return list(domains._REGISTRY)


def _defines_a_registered_domain(ref: str) -> bool:
    """Whether a module loaded earlier (so nothing new registered now) holds a registered domain's class."""
    module = load_module(ref)
    return any(isinstance(entry, domains.Domain) and type(entry).__module__ == module.__name__
               for entry in domains._REGISTRY.values())
