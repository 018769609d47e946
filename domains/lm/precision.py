"""Precision of a language-model run as two orthogonal settings: the compute dtype and the quantization format.

* ``compute`` -- the dtype the model computes in: ``fp32``, or ``bf16`` (the forward passes under
  ``torch.autocast(dtype=torch.bfloat16)``; master weights, gradients and optimizer state stay fp32).
* ``quant`` -- ``none``, or a :mod:`domains.lm.quant` format (``int4``, ``fp4_e1m2``, ...): quantization-aware
  training of the projection Linears (:class:`~domains.lm.quant.QuantLinear`, correct under autocast).

The paper's 4-bit runs are ``compute=bf16, quant=int4`` (or ``fp4_e1m2``): a bf16 model with fake-quantized
projections; its 16-bit runs are ``compute=bf16, quant=none``.

**The old single ``precision`` field.** Until the split, an LM config had one field ``precision``: ``fp32``,
``bf16``, or a quant format, which meant *fp32 compute* with that format. It keeps that meaning everywhere:

``fp32`` -> (fp32, none); ``bf16`` -> (bf16, none); a format, e.g. ``int4`` -> (fp32, int4). This mapping is
applied to ``--set llama.precision=...`` and study grids (:func:`resolve_alias`) and to stored configs, which the
analysis frame upgrades (:func:`upgrade_stored_config`), so old and new runs of one setting group together.

``precision`` is an alias resolved when a config is made (:func:`resolve_alias`): given as an override, it sets
both ``compute`` and ``quant`` (so ``--set llama.precision=int4`` on the ``paper`` preset is fp32 + INT4, as it
always was), except that a ``compute`` given alongside wins over the fp32 it implies. Besides the old values it
accepts ``<compute>+<quant>`` (``bf16+int4``). A config's ``precision`` attribute is the read-only
label of its pair (:func:`precision_label`): the old name where one exists, else ``bf16+<format>``.
"""

from __future__ import annotations

from typing import Any, Mapping

from domains.fields import ConfigError
from domains.lm import quant

COMPUTE_DTYPES = ("fp32", "bf16")
NO_QUANT = "none"
QUANT_FORMATS = (NO_QUANT, *quant.FORMATS)
# The domains whose stored configs may hold the old ``precision`` field with the meaning above.
LEGACY_PRECISION_DOMAINS = ("llama", "moe")


def parse_precision(precision: str) -> tuple[str, str]:
    """``(compute, quant)`` of an old ``precision`` value or a ``<compute>+<quant>`` label; ValueError if unknown."""
    text = str(precision)
    if text in COMPUTE_DTYPES:
        return text, NO_QUANT
    if text in quant.FORMATS:
        return "fp32", text  # the old meaning: a quant format computed in fp32
    compute, plus, fmt = text.partition("+")
    if plus and compute in COMPUTE_DTYPES and fmt in QUANT_FORMATS:
        return compute, fmt
    raise ValueError(f"must be one of {', '.join(COMPUTE_DTYPES + quant.FORMATS)} or <compute>+<quant> "
                     f"(compute {'/'.join(COMPUTE_DTYPES)}, quant a domains.quant format), got {text!r}")


def precision_label(compute: str, quant_format: str) -> str:
    """The one-word name of a pair: the old ``precision`` value where one means it, else ``<compute>+<quant>``."""
    if quant_format == NO_QUANT:
        return compute
    return quant_format if compute == "fp32" else f"{compute}+{quant_format}"


def precision_of(config: Any) -> tuple[str, str]:
    """``(compute, quant)`` of an LM config: a config object or a stored config mapping, new or old.

    A config with ``compute``/``quant`` is read as it is (a missing one takes its default, fp32 / none); one with
    only the old ``precision`` field is mapped as the module docstring's table says.
    """
    get = config.get if isinstance(config, Mapping) else (lambda key, default=None: getattr(config, key, default))
    if get("compute") is None and get("quant") is None and get("precision") is not None:
        return parse_precision(get("precision"))
    return get("compute") or "fp32", get("quant") or NO_QUANT


def precision_class(config: Any) -> str:
    """The hyper-parameter policy's class (:class:`domains.base.RunProfile`): ``low-bit`` when a quant format is set,
    whatever the compute dtype; else ``16-bit`` for bf16 and ``32-bit`` for fp32 (whose policy is the 16-bit one:
    fp32 is the CPU presets' stand-in for the paper's BF16)."""
    compute, quant_format = precision_of(config)
    if quant_format != NO_QUANT:
        return "low-bit"
    return "16-bit" if compute == "bf16" else "32-bit"


def resolve_alias(overrides: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """``overrides`` with an old ``precision`` replaced by the ``compute`` and ``quant`` it means.

    ``precision`` decides ``quant``, replacing a ``quant`` in the same overrides (a study grid's axis: a
    ``--set llama.precision=...`` replaced the grid's precision axis before the split, and still does). It decides
    ``compute`` too unless ``compute`` is among the overrides: ``precision=int4`` with ``compute=bf16`` is bf16 + INT4.
    Raises :class:`ConfigError` (naming ``where``, the domain) for an unknown value.
    """
    values = dict(overrides or {})
    if "precision" not in values:
        return values
    precision = values.pop("precision")
    try:
        compute, quant_format = parse_precision(precision)
    except ValueError as exc:
        raise ConfigError(f"{where}: field 'precision' {exc}") from None
    values.setdefault("compute", compute)
    values["quant"] = quant_format
    return values


def upgrade_stored_config(domain: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config of ``domain`` in today's form: for the LM domains, an old ``precision`` field is replaced by
    the ``compute`` and ``quant`` it meant (so old and new runs of the same setting group together)."""
    values = dict(config)
    if domain in LEGACY_PRECISION_DOMAINS and "precision" in values and "quant" not in values:
        try:
            compute, quant_format = parse_precision(values["precision"])
        except ValueError:
            return values  # not a value this mapping knows: left as stored
        del values["precision"]
        values.setdefault("compute", compute)
        values["quant"] = quant_format
    return values
