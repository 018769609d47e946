"""The shared step-based training layer of the supervised domains (LLaMA, OLMoE, PatchTST, quadratic)."""
