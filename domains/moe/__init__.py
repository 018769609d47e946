"""The ``moe`` domain: OLMoE mixture-of-experts LM pretraining (SPEC §2.2)."""

from domains.moe.domain import MoeConfig, MoeDomain

__all__ = ["MoeDomain", "MoeConfig"]
