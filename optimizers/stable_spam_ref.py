"""`StableSPAMRef`: Stable-SPAM exactly as the authors' published code behaves, quirks included (SPEC §1.1)."""
from __future__ import annotations

from typing import Any

import torch

from .base import InstrumentedOptimizer, StatsAccumulator, evaluate_closure
from .grouped import takes_hparams
from .schedules import momentum_scale
from .stable_spam import DEFAULTS
from .validation import validate


class StableSPAMRef(InstrumentedOptimizer):
    """Stable-SPAM as in the authors' ``galore_torch/stablespam.py`` (TianjinYellow/StableSPAM) — the suite's
    ``stable_spam_ref`` recipe, kept so results can be compared with the authors' runs step for step.

    Same algorithm, hyper-parameters and defaults as `optimizers.StableSPAM` (`optimizers.stable_spam.DEFAULTS`),
    a plain per-tensor loop, and these behaviours of the published code, reproduced on purpose:

    (a) On a reset step the Adam update uses the **old** moments (updated with this step's gradient) with the
        counter already set to 1 — about ``0.32 * m_old/sqrt(v_old)`` times lr — and fresh zero moments are
        installed for the next step, which runs at counter 2.
    (b) **One** counter per tensor (``state["step"]``) drives the bias corrections of AdaClip, AdaGN and Adam,
        so a reset re-inflates ``T_hat``, ``m_hat`` and ``v_hat`` while their EMAs keep running.
    (c) All state is in the **parameter's dtype**, the scalar EMAs included (a bf16 model gets bf16 moments and
        bf16 ``m_max_t``, ``m_norm_t``, ``v_norm_t``).
    (d) The global step driving resets and the cosine is a plain attribute (``total_steps``), **not** in
        ``state_dict()``: a resumed run restarts the reset phase and the cosine.
    (e) No special case for 1-D tensors; the cosine factor follows the authors' formula past ``total_T + 1``
        (it turns back up); the AdaGN scale is skipped when ``||g|| = 0`` (their ``if grad_norm > 0``, written
        here without a host sync); AdaGN's eps is the group's eps.

    Unlike the published code, which clips ``p.grad`` in place, ``step()`` leaves ``p.grad`` as it found it
    (nothing in the algorithm reads the gradient after the step, so the numbers are the same).
    """

    counters_in_state_dict = False

    @takes_hparams(DEFAULTS)
    def __init__(self, params, **hparams: Any) -> None:
        hp = validate(type(self).__name__, hparams, DEFAULTS)
        super().__init__(params, dict(hp, betas=tuple(hp["betas"])))
        self.total_steps = 0           # quirk (d): a plain attribute
        self._counters = {}

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the authors' algorithm. Returns the closure's loss, if any."""
        loss = evaluate_closure(closure)
        self.total_steps += 1
        stats = StatsAccumulator() if self.collect_stats else None
        for group in self.param_groups:
            scale = momentum_scale(self.total_steps, group["total_T"], group["eta_min"], hold=False)
            reset = group["reset_interval"] != 0 and self.total_steps % group["reset_interval"] == 0
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group, scale, reset, stats)
        self.last_stats = stats.result() if stats is not None else None
        return loss

    def _update(self, p, group, scale, reset, stats):
        grad = p.grad
        before = torch.norm(grad).reshape(1) if stats is not None else None
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        gamma1, gamma2, theta = group["gamma1"], group["gamma2"], group["gamma3"]
        p.mul_(1 - lr * group["weight_decay"])
        state = self.state[p]
        if not state:
            zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
            state.update(step=0, exp_avg=torch.zeros_like(grad), exp_avg_sq=torch.zeros_like(grad),
                         m_norm_t=zero.clone(), v_norm_t=zero.clone(), m_max_t=zero.clone())

        # AdaClip, on the shared counter (quirk b).
        max_gradient = grad.abs().max()
        state["step"] += 1
        step = state["step"]
        state["m_max_t"] = theta * state["m_max_t"] + (1 - theta) * max_gradient
        m_max_hat = state["m_max_t"] / (1 - theta ** step)
        mask = grad.abs() > m_max_hat
        grad = torch.where(mask, grad / max_gradient * m_max_hat, grad)

        # AdaGN, with gamma1 decayed by the cosine factor.
        grad_norm = torch.norm(grad)
        g1 = gamma1 * scale
        state["m_norm_t"] = g1 * state["m_norm_t"] + (1 - g1) * grad_norm
        state["v_norm_t"] = gamma2 * state["v_norm_t"] + (1 - gamma2) * grad_norm ** 2
        m_norm_hat = state["m_norm_t"] / (1 - g1 ** step)
        v_norm_hat = state["v_norm_t"] / (1 - gamma2 ** step)
        c_norm_t = m_norm_hat / (torch.sqrt(v_norm_hat) + eps)
        grad = torch.where(grad_norm > 0, grad / grad_norm * c_norm_t, grad)

        # MoRet, quirk (a): the locals keep the old moments for this step's update.
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if reset:
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
            state["step"] = 1
            step = 1

        # Adam, beta1 decayed by the cosine factor.
        b1 = beta1 * scale
        bias_correction1 = 1 - b1 ** step
        bias_correction2 = 1 - beta2 ** step
        exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
        p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)

        if stats is not None:
            stats.add(before, torch.norm(grad).reshape(1), mask.sum(), grad.numel(), reset)
