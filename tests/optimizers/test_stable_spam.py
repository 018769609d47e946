"""Stable-SPAM, mended (``stable_spam``) and as published (``stable_spam_ref``), against independent numpy
re-implementations of SPEC §1.1 written plainly below, plus hand-computed values."""
import math

import numpy as np
import pytest
import torch

import optimizers
import optimizers.chunked
from optimizers.schedules import momentum_scale
from optimizers.transforms import AdaClip, AdaGN, StepContext

LR, B1, B2, EPS, G1, G2, G3 = 0.01, 0.9, 0.999, 1e-8, 0.7, 0.9, 0.999


def cosine(t, total_T, eta_min, hold):
    if total_T is None:
        return 1.0
    if hold:
        t = min(t, total_T + 1)
    return eta_min + (1 - eta_min) * (1 + math.cos(math.pi * t / (total_T + 1))) / 2


def reference(grads, p0, *, mended, reset_interval, total_T=None, eta_min=0.5, wd=0.0, eps=EPS):
    """One tensor through Stable-SPAM in float64. ``mended``: SPEC's mended variant, else the authors' code."""
    p = p0.astype(np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    T = mn = vn = 0.0
    k = a = 0            # mended: AdaClip/AdaGN counter k, Adam counter a; authors: one counter k
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        scale = cosine(t, total_T, eta_min, hold=mended)
        p = p * (1 - LR * wd)
        k += 1
        gmax = np.abs(g).max()
        T = G3 * T + (1 - G3) * gmax
        T_hat = T / (1 - G3 ** k)
        g = np.where(np.abs(g) > T_hat, g / gmax * T_hat, g)
        n = np.linalg.norm(g)
        g1 = G1 * scale
        mn = g1 * mn + (1 - g1) * n
        vn = G2 * vn + (1 - G2) * n ** 2
        if n > 0:
            g = g / n * (mn / (1 - g1 ** k)) / (np.sqrt(vn / (1 - G2 ** k)) + eps)
        reset = reset_interval and t % reset_interval == 0
        b1 = B1 * scale
        if mended:
            if reset:
                m, v, a = np.zeros_like(p), np.zeros_like(p), 0
            a += 1
            m = b1 * m + (1 - b1) * g
            v = B2 * v + (1 - B2) * g * g
            p = p - LR / (1 - b1 ** a) * m / (np.sqrt(v) / np.sqrt(1 - B2 ** a) + eps)
        else:
            if reset:
                k = 1                       # counter set to 1, the update uses the old moments
            m_old = b1 * m + (1 - b1) * g
            v_old = B2 * v + (1 - B2) * g * g
            p = p - LR / (1 - b1 ** k) * m_old / (np.sqrt(v_old) / np.sqrt(1 - B2 ** k) + eps)
            m, v = (np.zeros_like(p), np.zeros_like(p)) if reset else (m_old, v_old)
        out.append(p.copy())
    return out


def spiky_grads(shape, steps, seed, spikes=(2, 6, 9)):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=shape).astype(np.float32) for _ in range(steps)]
    for s in (s for s in spikes if s < steps):
        grads[s].reshape(-1)[1] = 80.0    # a spike: far above the running max
    return grads


BACKENDS = ["native", "chunked", "foreach"]


def run(name, p0s, grads_per_tensor, backend="auto", **hp):
    params = [torch.nn.Parameter(torch.tensor(p0)) for p0 in p0s]
    opt = optimizers.build(name, params, lr=LR, **hp)
    opt.backend = backend             # "foreach": the multi-tensor path accelerators take
    trajectory = []
    for step in range(len(grads_per_tensor[0])):
        for p, gs in zip(params, grads_per_tensor):
            p.grad = torch.tensor(gs[step])
        opt.step()
        trajectory.append([p.detach().numpy().astype(np.float64).copy() for p in params])
    return trajectory, opt, params


@pytest.mark.parametrize("name, mended, backend", [("stable_spam", True, "native"), ("stable_spam", True, "chunked"),
                                                   ("stable_spam", True, "foreach"), ("stable_spam_ref", False, "auto"),
                                                   ("adam+moret+adagn+adaclip", True, "auto")])
@pytest.mark.parametrize("hp", [dict(reset_interval=4), dict(reset_interval=3, total_T=6, weight_decay=0.1)])
def test_trajectory_matches_independent_reference(name, mended, backend, hp, monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 4)      # several chunks per tensor on the CPU path
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)
    p0s = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), np.array([0.5, -0.25, 2.0], np.float32)]
    grads = [spiky_grads((2, 3), 12, seed=1), spiky_grads((3,), 12, seed=2, spikes=(3, 7))]
    got, _, _ = run(name, p0s, grads, backend, **hp)
    ref_hp = dict(reset_interval=hp["reset_interval"], total_T=hp.get("total_T"), wd=hp.get("weight_decay", 0.0))
    for i, (p0, gs) in enumerate(zip(p0s, grads)):
        expected = reference(gs, p0, mended=mended, **ref_hp)
        for step, (g_step, e_step) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(g_step[i], e_step, rtol=2e-5, atol=2e-6, err_msg=f"tensor {i} step {step + 1}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hp", [dict(reset_interval=4), dict(reset_interval=5, total_T=12, weight_decay=0.01)])
def test_fused_stable_spam_equals_the_transform_chain(backend, hp, monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 4)
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)
    p0s = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), np.array([0.5, -0.25, 2.0], np.float32)]
    grads = [spiky_grads((2, 3), 30, seed=7, spikes=(2, 9, 17, 25)), spiky_grads((3,), 30, seed=8)]
    fused, _, _ = run("stable_spam", p0s, grads, backend, **hp)
    chain, chain_opt, _ = run("adam+moret+adagn+adaclip", p0s, grads, **hp)
    assert isinstance(chain_opt, optimizers.Chain) and isinstance(chain_opt.base, torch.optim.AdamW)
    for step, (a, b) in enumerate(zip(fused, chain)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=f"step {step + 1}")


def test_the_two_variants_agree_until_the_first_reset_then_differ():
    p0s = [np.ones((2, 3), np.float32)]
    grads = [spiky_grads((2, 3), 6, seed=3)]
    mended, _, _ = run("stable_spam", p0s, grads, reset_interval=4)
    ref, _, _ = run("stable_spam_ref", p0s, grads, reset_interval=4)
    for step in range(3):
        np.testing.assert_allclose(mended[step][0], ref[step][0], rtol=1e-6)
    assert np.abs(mended[3][0] - ref[3][0]).max() > 1e-3


def test_mended_reset_step_is_a_first_adam_step():
    # Fresh moments and counter 1: the update is lr * g/(|g| + eps'), i.e. lr in size, with the gradient's sign.
    p0s = [np.zeros((2, 3), np.float32)]
    grads = [spiky_grads((2, 3), 4, seed=4, spikes=())]
    got, opt, params = run("stable_spam", p0s, grads, reset_interval=4)
    step4 = got[3][0] - got[2][0]
    np.testing.assert_allclose(step4, -LR * np.sign(grads[0][3]), rtol=1e-5)
    state = opt.state[params[0]]
    assert state["step"] == 1 and state["adaclip.step"] == 4 and state["adagn.step"] == 4


def test_ref_reset_step_uses_old_moments_at_counter_one():
    params = [torch.nn.Parameter(torch.zeros(2, 3))]
    opt = optimizers.build("stable_spam_ref", params, lr=LR, reset_interval=4)
    gs = [np.abs(g) + 0.5 for g in spiky_grads((2, 3), 5, seed=5, spikes=())]   # m well away from 0
    for step in range(3):
        params[0].grad = torch.tensor(gs[step])
        opt.step()
    old_m, old_v = opt.state[params[0]]["exp_avg"], opt.state[params[0]]["exp_avg_sq"]
    before = params[0].detach().clone()
    params[0].grad = torch.tensor(gs[3])
    opt.step()
    # the old tensors were updated in place with this step's gradient, then replaced by zeros
    state = opt.state[params[0]]
    assert state["step"] == 1 and torch.count_nonzero(state["exp_avg"]) == 0
    assert state["exp_avg"] is not old_m
    ratio = (before - params[0].detach()) / (LR * old_m / old_v.sqrt())
    np.testing.assert_allclose(ratio.numpy(), math.sqrt(1 - B2) / (1 - B1), rtol=1e-4)   # ~0.316
    params[0].grad = torch.tensor(gs[4])
    opt.step()
    assert opt.state[params[0]]["step"] == 2


def test_adaclip_transform_hand_computed():
    p = torch.nn.Parameter(torch.zeros(10))
    ctx = StepContext(step=1, state={p: {}}, base=None)
    clip = AdaClip(0.999)
    g1 = torch.ones(10)
    clip.apply([p], [g1], ctx)
    assert torch.equal(g1, torch.ones(10))                       # t = 1: T_hat = max|g|, nothing clipped
    g2 = torch.ones(10)
    g2[3] = -10.0
    clip.apply([p], [g2], ctx)
    t_hat = (0.999 * 0.001 + 0.001 * 10) / (1 - 0.999 ** 2)     # = 5.5023
    expected = torch.ones(10)
    expected[3] = -t_hat                                        # -10 / 10 * T_hat
    torch.testing.assert_close(g2, expected)


def test_adagn_transform_hand_computed_and_zero_norm():
    p = torch.nn.Parameter(torch.zeros(2))
    ctx = StepContext(step=1, state={p: {}}, base=None)
    gn = AdaGN(0.7, 0.9, eps=0.0)
    g = torch.tensor([3.0, 4.0])                               # n = 5
    gn.apply([p], [g], ctx)
    torch.testing.assert_close(g, torch.tensor([0.6, 0.8]))   # m_hat = 5, sqrt(v_hat) = 5 -> unit norm
    g = torch.tensor([0.0, 10.0])                              # n = 10
    gn.apply([p], [g], ctx)
    m_hat = (0.7 * 1.5 + 0.3 * 10) / (1 - 0.49)
    v_hat = (0.9 * 2.5 + 0.1 * 100) / (1 - 0.81)
    torch.testing.assert_close(g, torch.tensor([0.0, m_hat / math.sqrt(v_hat)]))
    g = torch.zeros(2)
    gn.apply([p], [g], ctx)
    assert torch.equal(g, torch.zeros(2))


def test_cosine_scale_values():
    assert momentum_scale(5, None, 0.5, hold=True) == 1.0
    assert momentum_scale(0, 10, 0.5, hold=True) == 1.0
    assert momentum_scale(11, 10, 0.5, hold=True) == pytest.approx(0.5)
    assert momentum_scale(5.5, 10, 0.5, hold=True) == pytest.approx(0.75)
    assert momentum_scale(1, 10, 0.2, hold=True) == pytest.approx(0.2 + 0.8 * (1 + math.cos(math.pi / 11)) / 2)
    assert momentum_scale(30, 10, 0.5, hold=True) == pytest.approx(0.5)      # mended: held at eta_min
    assert momentum_scale(22, 10, 0.5, hold=False) == pytest.approx(1.0)     # authors: back up after total_T+1
    assert momentum_scale(16.5, 10, 0.5, hold=False) == pytest.approx(0.75)


def test_cosine_applies_after_total_T_in_both_variants():
    p0s = [np.ones(4, np.float32)]
    grads = [spiky_grads((4,), 10, seed=6, spikes=())]
    for name, mended in (("stable_spam", True), ("stable_spam_ref", False)):
        got, _, _ = run(name, p0s, grads, reset_interval=0, total_T=3)
        expected = reference(grads[0], p0s[0], mended=mended, reset_interval=0, total_T=3)
        np.testing.assert_allclose(got[-1][0], expected[-1], rtol=2e-5, atol=2e-6)


def test_state_dtypes():
    p16 = torch.nn.Parameter(torch.randn(3, 4).bfloat16())
    ref = optimizers.build("stable_spam_ref", [p16])
    p16.grad = torch.randn(3, 4).bfloat16()
    ref.step()
    assert {v.dtype for v in ref.state[p16].values() if torch.is_tensor(v)} == {torch.bfloat16}
    assert ref.state[p16]["m_norm_t"].dim() == 0

    mended = optimizers.build("stable_spam", [p16])
    mended.step()
    assert {v.dtype for v in mended.state[p16].values() if torch.is_tensor(v)} == {torch.float32}
    assert p16.dtype == torch.bfloat16 and torch.isfinite(p16).all()

    p64 = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    p64.grad = torch.randn(3, dtype=torch.float64)
    wide = optimizers.build("stable_spam", [p64])
    wide.step()
    assert wide.state[p64]["exp_avg"].dtype == torch.float64


@pytest.mark.parametrize("name", ["stable_spam", "spam"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_mended_bf16_matches_fp32_computation(name, backend):
    # bf16 parameters, fp32 state: the update is computed in fp32 and rounded once into the bf16 parameter.
    torch.manual_seed(0)
    p16 = torch.nn.Parameter(torch.randn(64).bfloat16())
    p32 = torch.nn.Parameter(p16.detach().float())
    o16, o32 = optimizers.build(name, [p16], lr=0.01), optimizers.build(name, [p32], lr=0.01)
    o16.backend = o32.backend = backend
    for _ in range(3):
        g = torch.randn(64).bfloat16()
        p16.grad, p32.grad = g, g.float()
        o16.step()
        o32.step()
        torch.testing.assert_close(p16.detach(), p32.detach().bfloat16(), atol=0, rtol=2 ** -7)
        with torch.no_grad():
            p32.copy_(p16)


@pytest.mark.parametrize("name", ["stable_spam", "spam", "stable_spam_ref", "adam+moret+adagn+adaclip"])
@pytest.mark.parametrize("magnitude", [0.0, 1e-30, 1e30])
@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_gradients_stay_finite(name, magnitude, backend):
    if name == "stable_spam_ref" and magnitude == 1e30:
        pytest.skip("the authors' code takes ||g|| in the parameter dtype: it overflows to inf for |g| ~ 1e30")
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 5)), torch.nn.Parameter(torch.randn(7))]
    opt = optimizers.build(name, params, lr=1e-3, reset_interval=3)
    opt.backend = backend
    for step in range(5):
        for p in params:
            p.grad = torch.randn_like(p) * magnitude
        opt.step()
        for p in params:
            assert torch.isfinite(p).all(), f"{name} step {step + 1}"


@pytest.mark.parametrize("name, backend", [("stable_spam", b) for b in BACKENDS] + [("stable_spam_ref", "auto")])
def test_step_leaves_the_gradients_as_the_caller_left_them(name, backend, monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 2)
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)
    params = [torch.nn.Parameter(torch.zeros(5)), torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))]
    opt = optimizers.build(name, params, reset_interval=2)
    opt.backend = backend
    for g in (np.ones(5, np.float32), np.array([1.0, -1.0, 1.0, 1.0, 50.0], np.float32), np.full(5, 3.0, np.float32)):
        params[0].grad = torch.tensor(g)                            # 50 is clipped at step 2; reset at step 2
        params[1].grad = torch.tensor(g[:3] * 7).bfloat16()
        given = [p.grad.clone() for p in params]
        opt.step()
        for p, g0 in zip(params, given):
            assert torch.equal(p.grad, g0), name
