"""The ``llama`` domain: LLaMA pretraining in full precision and in simulated 2-8-bit QAT (SPEC §2.1)."""

from domains.llama.domain import LlamaConfig, LlamaDomain

__all__ = ["LlamaDomain", "LlamaConfig"]
