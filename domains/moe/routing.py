"""Router telemetry and router losses of a top-k mixture-of-experts LM (OLMoE).

Expert load = the fraction of a layer's top-k assignments each expert received (a layer's fractions sum
to 1; perfectly balanced routing gives ``1/experts`` each). Its balance is summarised per layer by the
coefficient of variation ``std/mean`` over experts (0 = balanced; ``sqrt(experts/top_k - 1)`` = every
token goes to the same ``top_k`` experts).

The assignment is recomputed from the router logits exactly as ``OlmoeTopKRouter`` routes: softmax in
float32, then the ``top_k`` largest probabilities.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def expert_counts(router_logits: Tensor, top_k: int) -> Tensor:
    """Top-k assignments per expert of one layer: router logits ``(tokens, experts)`` -> float ``(experts,)``."""
    chosen = router_logits.float().softmax(dim=-1).topk(top_k, dim=-1).indices.reshape(-1)
    counts = torch.zeros(router_logits.shape[-1], dtype=torch.float32, device=router_logits.device)
    # scatter_add_ rather than bincount: no host synchronisation on GPUs
    return counts.scatter_add_(0, chosen, torch.ones_like(chosen, dtype=torch.float32))


def expert_load(router_logits: Sequence[Tensor], top_k: int) -> Tensor:
    """Fraction of each layer's top-k assignments per expert: ``(layers, experts)``, every row sums to 1."""
    with torch.no_grad():
        return load_fractions(torch.stack([expert_counts(logits, top_k) for logits in router_logits]))


def load_fractions(counts: Tensor) -> Tensor:
    """Assignment counts ``(..., experts)`` normalised over the experts (each row sums to 1)."""
    return counts / counts.sum(dim=-1, keepdim=True).clamp_min(1)


def load_cv(load: Tensor) -> Tensor:
    """Coefficient of variation over experts of each layer's load ``(layers, experts)`` -> ``(layers,)``."""
    return load.std(dim=-1, unbiased=False) / load.mean(dim=-1)


def balance_summary(load: Tensor) -> dict[str, Tensor]:
    """``load_cv_mean`` and ``load_cv_max``: the mean and worst per-layer coefficient of variation."""
    cv = load_cv(load)
    return {"load_cv_mean": cv.mean(), "load_cv_max": cv.max()}


def load_series(load: Tensor) -> dict[str, float]:
    """The load matrix as named scalars ``expert_load/L{layer}/E{expert}`` (for per-step logging/plots)."""
    return {f"expert_load/L{layer}/E{expert}": float(value)
            for layer, row in enumerate(load.tolist()) for expert, value in enumerate(row)}


def load_balancing_loss(router_logits: Sequence[Tensor], top_k: int) -> Tensor:
    """OLMoE's load-balancing loss (Switch Transformer's, per layer, as OLMoE's megablocks code computes
    it): ``experts * sum_e load_e * mean_prob_e`` for each layer, averaged over layers; 1 when balanced.

    ``load_e`` (top-k assignment fraction) carries no gradient; the router learns through ``mean_prob_e``.
    transformers' own ``load_balancing_loss_func`` pools the layers before the product, so opposite
    imbalances in two layers cancel out; this one penalises every layer's imbalance.
    """
    losses = []
    for logits in router_logits:
        load = load_fractions(expert_counts(logits.detach(), top_k))
        losses.append(logits.shape[-1] * (load * logits.float().softmax(dim=-1).mean(dim=0)).sum())
    return torch.stack(losses).mean()


def router_z_loss(router_logits: Sequence[Tensor]) -> Tensor:
    """Router z-loss (ST-MoE; OLMoE trains with coefficient 0.001): the token mean of
    ``logsumexp(logits)^2``, averaged over layers. Keeps router logits small, hence bf16-safe."""
    return torch.stack([torch.logsumexp(logits.float(), dim=-1).square().mean() for logits in router_logits]).mean()


class RouterLoadMeter:
    """Counts the top-k assignments of the given routers while active (forward hooks).

    ``routers``: router modules in layer order (``OlmoeTopKRouter``: a ``weight`` of shape
    ``(experts, hidden)``, a forward that returns the logits first). Use it as a context manager around
    an evaluation; :meth:`load` gives the ``(layers, experts)`` fractions, summed over data-parallel
    ranks when ``torch.distributed`` is running.
    """

    def __init__(self, routers: Sequence[nn.Module], top_k: int):
        self.routers, self.top_k = list(routers), top_k
        self.counts = [torch.zeros(r.weight.shape[0], device=r.weight.device) for r in self.routers]
        self._handles: list = []

    def __enter__(self) -> "RouterLoadMeter":
        self._handles = [router.register_forward_hook(self._hook(layer)) for layer, router in enumerate(self.routers)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, layer: int):
        def record(_module, _inputs, output) -> None:
            self.counts[layer] += expert_counts(output[0].detach(), self.top_k)
        return record

    def load(self) -> Tensor:
        """Fractions of the assignments seen so far, ``(layers, experts)``; rows sum to 1."""
        counts = torch.stack(self.counts)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        return load_fractions(counts)
