"""QAT under bf16 autocast: QuantLinear computes in bf16, fake-quantizes in fp32, returns fp32 master gradients.

Tolerance (bf16 against the fp32 reference). bf16 keeps 8 significant bits, so rounding to it has a relative
error of at most u = 2^-8. An element c = sum_i a_i b_i of a bf16 matmul is computed from a and b rounded to bf16
(relative error <= u each), accumulated in fp32 (<= K * 2^-24 relative to sum |a_i b_i|, under 0.02 u for the
K <= 64 used here) and rounded to bf16 (<= u |c|). Hence |c_bf16 - c| <= (3u + O(u^2)) * sum_i |a_i| |b_i|.
The tests allow 4u * (|a| @ |b|) element by element: the first-order bound plus headroom for the accumulation
term. Measured on these inputs: at most 0.82u * (|a| @ |b|). Quantizing bf16-rounded values instead of the fp32
ones (the grid computed in bf16) moves elements to neighbouring grid points and gives 7.7u to 21u: the bound
also checks that the fake quantization runs in fp32.
"""

import pytest
import torch
import torch.nn.functional as F

from domains.llama.domain import LlamaConfig, build_model
from domains.quant import QuantLinear, quantize_values

FORMATS = ("int4", "fp4_e1m2", "mxfp4", "nvfp4")
BF16_UNIT_ROUNDOFF = 2.0 ** -8
BOUND_FACTOR = 4


def _layer_and_input(fmt: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    layer = QuantLinear(512, 96, bias=True, fmt=fmt)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(96, 512, generator=gen) * 0.05)
        layer.bias.copy_(torch.randn(96, generator=gen) * 0.1)
    x = torch.randn(4, 16, 512, generator=gen)
    upstream = torch.randn(4, 16, 96, generator=gen)
    return layer, x, upstream


def _grads(layer: QuantLinear, x: torch.Tensor, upstream: torch.Tensor, autocast: bool):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = layer(x)
    out.backward(upstream.to(out.dtype))
    return out, x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("fmt", FORMATS)
def test_forward_under_autocast_is_the_fp32_grid_multiplied_in_bf16(fmt):
    layer, x, _ = _layer_and_input(fmt)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    x_q = quantize_values(x, fmt, "activation")  # fp32 inputs: quantized in fp32
    w_q = quantize_values(layer.weight, fmt, "weight")
    expected = F.linear(x_q.bfloat16(), w_q.bfloat16(), layer.bias.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_qat_gradients_under_bf16_autocast_match_fp32_within_bf16_rounding(fmt):
    layer, x, upstream = _layer_and_input(fmt)
    _, gx_ref, gw_ref, gb_ref = _grads(layer, x, upstream, autocast=False)
    _, gx, gw, gb = _grads(layer, x, upstream, autocast=True)

    # Gradients arrive in the dtypes of the fp32 input and the fp32 master weight and bias.
    assert (gx.dtype, gw.dtype, gb.dtype) == (torch.float32,) * 3
    x_q = quantize_values(x, fmt, "activation").reshape(-1, 512)
    w_q = quantize_values(layer.weight.detach(), fmt, "weight")
    g = upstream.reshape(-1, 96)
    u = BOUND_FACTOR * BF16_UNIT_ROUNDOFF
    bound_x = u * (g.abs() @ w_q.abs())            # grad_x = g @ W_q
    bound_w = u * (g.abs().t() @ x_q.abs())        # grad_W = g^T @ x_q
    bound_b = u * g.abs().sum(0)                   # grad_b = sum of rows of g (only g is rounded)
    assert ((gx.reshape(-1, 512) - gx_ref.reshape(-1, 512)).abs() <= bound_x).all()
    assert ((gw - gw_ref).abs() <= bound_w).all()
    assert ((gb - gb_ref).abs() <= bound_b).all()
    # ... and the bf16 path really ran: its gradients are not the fp32 ones.
    assert not torch.equal(gx, gx_ref)


def test_a_bf16_input_gets_a_bf16_gradient():
    layer, x, upstream = _layer_and_input("int4")
    x = x.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    out.backward(upstream.bfloat16())
    assert (x.grad.dtype, layer.weight.grad.dtype) == (torch.bfloat16, torch.float32)


def test_backward_inside_an_autocast_region_gives_the_same_gradients():
    # Gradient accumulation calls backward() while autocast is still on; the matmuls must not change dtype.
    layer, x, upstream = _layer_and_input("nvfp4")
    for autocast_forward in (False, True):
        _, gx_out, gw_out, _ = _grads(layer, x, upstream, autocast=autocast_forward)
        layer.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_forward):
            out = layer(xi)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out.backward(upstream.to(out.dtype))
        assert torch.equal(xi.grad, gx_out) and torch.equal(layer.weight.grad, gw_out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_qat_llama_trains_under_bf16_autocast(fmt):
    model = build_model(LlamaConfig(size="nano", quant=fmt, seq_len=32), vocab_size=256, seed=0).train()
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 7 * 2  # 7 projections x 2 layers
    ids = torch.randint(256, (4, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fp32_loss = float(model(input_ids=ids, labels=ids).loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert out.logits.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(torch.tensor(losses)))
    # The bf16 model computes the fp32 model's function: the initial loss (~ln 256 = 5.5) agrees within 0.5%,
    # about one bf16 rounding (measured: 0.03% at most over the four formats)...
    assert losses[0] == pytest.approx(fp32_loss, rel=5e-3)
    # ... and learns: three AdamW steps on one batch lower its loss.
    assert losses[-1] < losses[0]
