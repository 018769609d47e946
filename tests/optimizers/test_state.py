"""Checkpointing, LR schedulers, param groups and the stats protocol."""
import io
import math

import pytest
import torch

import optimizers

ROUND_TRIP = {
    "stable_spam": dict(reset_interval=4, total_T=6),
    "spam": dict(reset_interval=25, warmup=5, threshold=50.0),
    "adam+moret+adagn+adaclip": dict(reset_interval=4, total_T=6),
    "adam+moret+adagn+spikeclip": dict(reset_interval=25, threshold=50.0),
    "lion_stable": {},
    "adam_mini_stable": dict(dim=4, n_heads=2),
}


def make_params(dtype=torch.float32):
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(4, 4, dtype=dtype)), torch.nn.Parameter(torch.randn(4, dtype=dtype))]


def named(params):
    return [("attn.q_proj.weight", params[0]), ("mlp.bias", params[1])]


def feed(opt, params, steps, start):
    for step in range(start, start + steps):
        gen = torch.Generator().manual_seed(step)
        for p in params:
            g = torch.randn(p.shape, generator=gen)
            if step % 5 == 2:
                g.view(-1)[0] = 200.0
            p.grad = g.to(p.dtype)
        opt.step()


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_resume_mid_run_is_bit_for_bit(name):
    hp, total, cut = ROUND_TRIP[name], 40, 23          # crosses resets on both sides of the cut
    ref_params = make_params()
    ref = optimizers.build(name, named(ref_params), lr=0.01, **hp)
    feed(ref, ref_params, total, 0)

    params = make_params()
    opt = optimizers.build(name, named(params), lr=0.01, **hp)
    feed(opt, params, cut, 0)
    buffer = io.BytesIO()
    torch.save({"model": [p.detach().clone() for p in params], "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    fresh_params = make_params()
    with torch.no_grad():
        for p, value in zip(fresh_params, saved["model"]):
            p.copy_(value)
    fresh = optimizers.build(name, named(fresh_params), lr=0.01, **hp)
    fresh.load_state_dict(saved["optim"])
    feed(fresh, fresh_params, total - cut, cut)
    for a, b in zip(ref_params, fresh_params):
        assert torch.equal(a, b)


def test_resume_keeps_fp32_state_of_a_bf16_model():
    params = make_params(torch.bfloat16)
    opt = optimizers.build("stable_spam", params)
    feed(opt, params, 3, 0)
    fresh = optimizers.build("stable_spam", params)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state[params[0]]["exp_avg"].dtype == torch.float32
    assert fresh.state[params[0]]["adagn.v"].dtype == torch.float32


def test_ref_variant_restarts_its_step_counter_on_resume():
    # quirk (d): the global step is not saved, so a resumed run takes its reset at a different step
    params = make_params()
    opt = optimizers.build("stable_spam_ref", params, reset_interval=4)
    feed(opt, params, 3, 0)
    sd = opt.state_dict()
    assert "counters" not in sd and opt.total_steps == 3
    fresh = optimizers.build("stable_spam_ref", params, reset_interval=4)
    fresh.load_state_dict(sd)
    assert fresh.total_steps == 0
    assert optimizers.build("stable_spam", params).state_dict()["counters"] == {"step": 0}


@pytest.mark.parametrize("name", ["stable_spam", "adam", "spam"])
def test_lambda_lr_drives_the_learning_rate(name):
    runs = []
    for use_scheduler in (True, False):
        params = make_params()
        opt = optimizers.build(name, params, lr=0.1 if use_scheduler else 0.05)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5) if use_scheduler else None
        feed(opt, params, 5, 0)
        if sched is not None:
            sched.step()
            assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["stable_spam", "adam+moret+adagn+adaclip", "spam", "stable_spam_ref"])
def test_param_groups_with_different_learning_rates(name):
    frozen, moving = make_params()
    start = frozen.detach().clone()
    opt = optimizers.build(name, [{"params": [frozen], "lr": 0.0}, {"params": [moving], "lr": 0.1}])
    before = moving.detach().clone()
    feed(opt, [frozen, moving], 3, 0)
    assert torch.equal(frozen, start)
    assert not torch.equal(moving, before)


def one_step_stats(name, grads, **hp):
    p = torch.nn.Parameter(torch.zeros(10))
    opt = optimizers.build(name, [p], **hp)
    opt.collect_stats = True
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return opt.last_stats


def test_stable_spam_stats_hand_computed():
    ones = [1.0] * 10
    spike = [1.0] * 9 + [10.0]
    for name in ("stable_spam", "adam+moret+adagn+adaclip", "stable_spam_ref"):
        stats = one_step_stats(name, [ones, spike], reset_interval=2)
        assert set(stats) == set(optimizers.STAT_KEYS)
        assert all(torch.is_tensor(v) and v.dim() == 0 and v.dtype == torch.float32 for v in stats.values())
        t_hat = (0.999 * 0.001 + 0.001 * 10) / (1 - 0.999 ** 2)          # one entry above it: 10 > 5.50
        n1, n2 = math.sqrt(10), math.sqrt(9 + t_hat ** 2)
        m_hat = (0.7 * 0.3 * n1 + 0.3 * n2) / (1 - 0.7 ** 2)
        v_hat = (0.9 * 0.1 * n1 ** 2 + 0.1 * n2 ** 2) / (1 - 0.9 ** 2)
        assert stats["grad_norm_before"].item() == pytest.approx(math.sqrt(109), rel=1e-6)
        assert stats["grad_norm_after"].item() == pytest.approx(m_hat / math.sqrt(v_hat), rel=1e-5)
        assert stats["clip_fraction"].item() == pytest.approx(0.1)
        assert stats["reset"].item() == 1.0
    first = one_step_stats("stable_spam", [ones], reset_interval=2)
    assert first["clip_fraction"].item() == 0.0 and first["reset"].item() == 0.0


def test_global_norm_clip_stats():
    stats = one_step_stats("adam_clip", [[3.0, 4.0] + [0.0] * 8], max_norm=1.0)
    assert stats["grad_norm_before"].item() == pytest.approx(5.0)
    assert stats["grad_norm_after"].item() == pytest.approx(1.0, rel=1e-5)
    assert stats["clip_fraction"].item() == 1.0 and stats["reset"].item() == 0.0
    calm = one_step_stats("adam_clip", [[0.3, 0.4] + [0.0] * 8], max_norm=1.0)
    assert calm["clip_fraction"].item() == 0.0
    assert calm["grad_norm_after"].item() == pytest.approx(0.5, rel=1e-5)


def test_spam_stats_count_the_clipped_entries():
    grads = [[1.0] * 10] * 20 + [[1.0] * 8 + [500.0, -500.0]]
    stats = one_step_stats("spam", grads, threshold=100.0, reset_interval=0)
    assert stats["clip_fraction"].item() == pytest.approx(0.2)
    v_prev = 1 - 0.999 ** 20                                  # constant gradient 1 for 20 steps
    bound = math.sqrt(100.0 * v_prev)
    assert stats["grad_norm_after"].item() == pytest.approx(math.sqrt(8 + 2 * bound ** 2), rel=1e-5)
    assert stats["grad_norm_before"].item() == pytest.approx(math.sqrt(8 + 2 * 500.0 ** 2), rel=1e-6)


def test_stats_off_means_none():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optimizers.build("stable_spam", [p])
    opt.collect_stats = True
    p.grad = torch.ones(3)
    opt.step()
    assert opt.last_stats is not None
    opt.collect_stats = False
    opt.step()
    assert opt.last_stats is None
