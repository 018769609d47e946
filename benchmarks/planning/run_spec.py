"""One run of the benchmark: :class:`RunSpec` and its stable identifier."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Mapping


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run, plus the labels it is reported under.

    ``config`` is the domain's resolved config at the grid point as plain JSON values, before a budget is
    applied; ``budget`` is the run length a suite asked for (None: the config's own), which the engine writes
    into the domain's ``budget_field``; ``overrides`` are the fields set on top of the preset (the grid point,
    and the budget field when a budget is given), from which a worker rebuilds the config the run uses.
    ``hparams`` are the complete keyword arguments of ``optimizers.build`` (``lr`` included); ``variant`` is a
    short label of the hyper-parameters that differ from the domain's defaults for the recipe (``lr`` excluded;
    ``""`` for the default recipe). ``studies`` only labels the run: a run requested by two studies is the same
    run and is done once.
    """

    domain: str
    preset: str
    config: Mapping[str, Any]
    overrides: Mapping[str, Any]
    recipe: str
    hparams: Mapping[str, Any]
    seed: int
    budget: int | None = None
    variant: str = ""
    studies: tuple[str, ...] = ()
    domain_class: str = ""  # "module:QualName", so a spawned worker can import a user-registered domain
    # the domain's ``identity_omits``: config fields left out of the run id at these values
    identity_omits: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """A hash of everything that defines the run (not its study labels); stable across processes."""
        identity = {
            "domain": self.domain,
            "preset": self.preset,
            "config": {key: value for key, value in self.config.items()
                       if key not in self.identity_omits or value != self.identity_omits[key]},
            "recipe": self.recipe,
            "hparams": self.hparams,
            "seed": self.seed,
            "budget": self.budget,
        }
        return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]

    @property
    def lr(self) -> float | None:
        """The peak learning rate, or None when the recipe takes none."""
        value = self.hparams.get("lr")
        return None if value is None else float(value)

    def with_studies(self, studies: tuple[str, ...]) -> "RunSpec":
        """The same run labelled with ``studies``."""
        return dataclasses.replace(self, studies=tuple(sorted(set(studies))))


def to_jsonable(value: Any) -> Any:
    """Plain JSON value for a config or hyper-parameter value (tuples become lists, enums their value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no inf/nan; keep them distinguishable
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return to_jsonable(value.item())
    return str(value)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text (sorted keys, no whitespace) used for hashing and storage."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def variant_label(hparams: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """``key=value`` pairs (sorted, ``lr`` excluded) of ``hparams`` that differ from ``defaults``."""
    parts = []
    for key in sorted(hparams):
        if key == "lr":
            continue
        if key in defaults and to_jsonable(defaults[key]) == to_jsonable(hparams[key]):
            continue
        parts.append(f"{key}={_short(hparams[key])}")
    return ",".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

