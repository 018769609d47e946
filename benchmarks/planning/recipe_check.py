"""Recipe validation before anything runs: every distinct (recipe, hyper-parameters) of a plan is built once."""

from __future__ import annotations

from typing import Iterable, Mapping

from benchmarks.errors import BadInput
from benchmarks.planning.run_spec import RunSpec, canonical_json
from benchmarks.suggest import did_you_mean


def validate_recipes(specs: Iterable[RunSpec], origins: Mapping[str, str] | None = None) -> None:
    """Build every distinct (recipe, hyper-parameters) on a dummy parameter; BadInput on the first failure.

    ``origins`` maps a recipe name to where it was asked for (``--optimizers adamx``), for the message.
    """
    import torch

    import optimizers

    seen = set()
    for spec in specs:
        key = (spec.recipe, canonical_json(spec.hparams))
        if key in seen:
            continue
        seen.add(key)
        dummy = [("weight", torch.nn.Parameter(torch.zeros(8, 8))), ("bias", torch.nn.Parameter(torch.zeros(8)))]
        try:
            optimizers.build(spec.recipe, dummy, **spec.hparams)
        except Exception as exc:  # ValueError by contract; any other failure is equally a bad recipe
            where = (origins or {}).get(spec.recipe) or f"optimizer {spec.recipe}"
            message = " ".join(str(exc).split())
            if spec.recipe not in optimizers.available():
                known = optimizers.available()
                message = (f"unknown optimizer recipe {spec.recipe!r}{did_you_mean(spec.recipe, known)}; "
                           f"available: {', '.join(known)}")
            message = message if len(message) <= 300 else message[:297] + "..."
            raise BadInput(f"{where}: {message}") from None

