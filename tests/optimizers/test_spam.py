"""SPAM (SPEC §1.2) against an independent numpy re-implementation written from the SPEC's rule."""
import math

import numpy as np
import pytest
import torch

import optimizers
import optimizers.chunked
from optimizers import SPAM

LR, B1, B2 = 0.01, 0.9, 0.999


def reference(grads, p0, *, theta, interval, warmup, eps=1e-6, wd=0.0):
    """SPEC §1.2 literally: j starts at N+1, j += 1 after every step, j := 0 after the step before a reset."""
    p = p0.astype(np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    t, j = 0, warmup + 1
    out = []
    for k, g in enumerate(grads):
        c = k + 1
        g = g.astype(np.float64)
        if interval and c % interval == 0:
            m, v = np.zeros_like(p), np.zeros_like(p)
        f = 1 - (0.0 if j >= warmup else 0.99 * (1 + math.cos(math.pi * j / (warmup + 1))) / 2)
        if theta > 0 and c >= 20 and (interval == 0 or c % interval >= 20):
            g = np.where(g * g > theta * v, np.sign(g) * np.sqrt(theta * v), g)
        t += 1
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = p - LR * math.sqrt(1 - B2 ** t) / (1 - B1 ** t) * f * m / (np.sqrt(v) + eps)
        if wd > 0:
            p = p - LR * wd * p
        j = 0 if interval and (c + 1) % interval == 0 else j + 1
        out.append(p.copy())
    return out


@pytest.mark.parametrize("backend", ["native", "chunked", "foreach"])
def test_trajectory_matches_reference_across_clipping_reset_and_warmup(backend, monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 4)      # several chunks per tensor on the CPU path
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)
    rng = np.random.default_rng(0)
    steps, interval, warmup = 60, 25, 6
    grads = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(steps)]
    for s in (5, 21, 27, 46, 55):       # spikes at c = 6 (< 20), 22 and 47 (clipped), 28 and 56 (< 20 after a reset)
        grads[s][0, 1] = 300.0
    p = torch.nn.Parameter(torch.linspace(-1, 1, 6).reshape(2, 3))
    p0 = p.detach().numpy().copy()
    opt = optimizers.build("spam", [p], lr=LR, threshold=50.0, reset_interval=interval, warmup=warmup,
                           weight_decay=0.05)
    opt.backend = backend
    expected = reference(grads, p0, theta=50.0, interval=interval, warmup=warmup, wd=0.05)
    for step, g in enumerate(grads):
        p.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), expected[step], rtol=1e-5, atol=1e-6,
                                   err_msg=f"step {step + 1}")
    assert opt.state[p]["step"] == steps            # Adam's counter is never reset


def test_warmup_factor_values():
    assert SPAM.warmup_factor(1, 500, 150) == 1.0           # no warm-up at the very start
    assert SPAM.warmup_factor(499, 500, 150) == 1.0
    assert SPAM.warmup_factor(500, 500, 150) == pytest.approx(0.01)    # the reset step
    assert SPAM.warmup_factor(575, 500, 150) == pytest.approx(1 - 0.99 * (1 + math.cos(math.pi * 75 / 151)) / 2)
    assert SPAM.warmup_factor(649, 500, 150) > SPAM.warmup_factor(600, 500, 150) > 0.01
    assert SPAM.warmup_factor(650, 500, 150) == 1.0         # N steps after the reset
    assert SPAM.warmup_factor(1000, 500, 150) == pytest.approx(0.01)
    assert SPAM.warmup_factor(10_000, 0, 150) == 1.0        # resets disabled


def spam_after(grads, **hp):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimizers.build("spam", [p], lr=LR, **hp)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return opt.state[p]


@pytest.mark.parametrize("spike_step, clipped", [(10, False), (20, True), (30, False), (49, False), (50, True)])
def test_clip_rule(spike_step, clipped):
    # Constant gradient 1 until the spike; reset every 30 steps: clipping from step 20, off in steps 30..49.
    grads = [np.ones(3, np.float32) for _ in range(spike_step)]
    grads[-1] = np.array([1000.0, 1.0, -1000.0], np.float32)
    before = spam_after(grads[:-1], threshold=100.0, reset_interval=30)
    v_prev, m_prev = before["exp_avg_sq"].clone(), before["exp_avg"].clone()
    after = spam_after(grads, threshold=100.0, reset_interval=30)
    if spike_step % 30 == 0:                        # the spike step itself resets the moments first
        v_prev, m_prev = torch.zeros(3), torch.zeros(3)
    bound = float(math.sqrt(100.0 * v_prev[0]))
    g_used = torch.tensor([bound, 1.0, -bound]) if clipped else torch.tensor(grads[-1])
    torch.testing.assert_close(after["exp_avg"], B1 * m_prev + (1 - B1) * g_used)
    assert after["step"] == spike_step


@pytest.mark.parametrize("backend", ["native", "chunked", "foreach"])
def test_step_consumes_the_clipped_gradient_and_leaves_p_grad_alone(backend, monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 2)
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimizers.build("spam", [p], lr=LR, threshold=100.0, reset_interval=0)
    opt.backend = backend
    for _ in range(19):
        p.grad = torch.ones(3)
        opt.step()
    v_prev, m_prev = opt.state[p]["exp_avg_sq"].clone(), opt.state[p]["exp_avg"].clone()
    p.grad = torch.tensor([1000.0, 1.0, -1000.0])
    opt.step()
    bound = float(math.sqrt(100.0 * v_prev[0]))
    torch.testing.assert_close(opt.state[p]["exp_avg"], B1 * m_prev + (1 - B1) * torch.tensor([bound, 1.0, -bound]))
    assert torch.equal(p.grad, torch.tensor([1000.0, 1.0, -1000.0]))


def test_moments_reset_but_not_the_counter():
    state = spam_after([np.ones(3, np.float32)] * 4, reset_interval=4)
    assert state["step"] == 4
    torch.testing.assert_close(state["exp_avg"], torch.full((3,), 1 - B1))      # zeroed at step 4, then one step
    torch.testing.assert_close(state["exp_avg_sq"], torch.full((3,), 1 - B2))


def test_spikeclip_transform_in_a_chain_uses_the_base_second_moment():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimizers.Chain(torch.optim.AdamW([p], lr=LR, weight_decay=0.0), [optimizers.SpikeClip(100.0, 0)])
    for _ in range(19):
        p.grad = torch.ones(3)
        opt.step()
    v_prev = opt.base.state[p]["exp_avg_sq"].clone()
    p.grad = torch.tensor([1000.0, 1.0, -1000.0])
    opt.collect_stats = True
    opt.step()
    bound = float(math.sqrt(100.0 * v_prev[0]))
    # the chain leaves p.grad alone; the consumed gradient shows in the stats
    torch.testing.assert_close(opt.last_stats["grad_norm_after"], torch.tensor([bound, 1.0, -bound]).norm())
    torch.testing.assert_close(p.grad, torch.tensor([1000.0, 1.0, -1000.0]))
    assert opt.last_stats["clip_fraction"].item() == pytest.approx(2 / 3)
