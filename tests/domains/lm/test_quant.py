"""domains.quant: value grids per format, the outlier rule, STE gradients and the QAT Linear backward."""

import pytest
import torch
from torch import nn

from domains.quant import FORMATS, QuantLinear, fake_quantize, nv_block_scales, quantize_model


def _ratios_on_grid(values: torch.Tensor, scale: float, grid: list[float]) -> bool:
    ratios = (values.abs() / scale).unsqueeze(-1)
    return bool(((ratios - torch.tensor(grid)).abs().min(-1).values < 1e-5).all())


def test_int4_weight_group_with_known_min_max_dequantizes_exactly():
    # min -1, max 2: scale 3/15 = 0.2, zero-point round(1/0.2) = 5, levels (q - 5) * 0.2 for q in 0..15
    w = torch.tensor([-1.0, 2.0, 0.0, 0.5, 0.31, -0.29, 1.05, 1.99] + [0.0] * 248)
    out = fake_quantize(w, "int4", "weight")
    expected_head = torch.tensor([-1.0, 2.0, 0.0, 0.4, 0.4, -0.2, 1.0, 2.0])
    assert torch.allclose(out[:8], expected_head, atol=1e-6)
    levels = (torch.arange(16) - 5) * 0.2
    assert ((out.unsqueeze(-1) - levels).abs().min(-1).values < 1e-6).all()


def test_int_weight_groups_are_independent_and_flattened_row_major():
    w = torch.cat([torch.linspace(0, 1, 256), torch.linspace(-10, 10, 256)]).view(4, 128)
    out = fake_quantize(w, "int2", "weight")  # 4 levels per group of 256
    assert out[:2].unique().numel() == 4 and out[2:].unique().numel() == 4
    assert torch.allclose(out[:2].unique(), torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]), atol=1e-6)


@pytest.mark.parametrize("fmt,bits", [("int2", 2), ("int3", 3), ("int4", 4), ("int8", 8)])
def test_activation_group_keeps_two_outliers_exact_and_quantizes_the_rest_symmetrically(fmt, bits):
    x = torch.linspace(-1, 1, 256)
    x[10], x[200] = 50.0, -70.0  # the two outliers
    out = fake_quantize(x, fmt, "activation")
    assert out[10] == 50.0 and out[200] == -70.0
    rest = torch.ones(256, dtype=torch.bool)
    rest[[10, 200]] = False
    qmax = 2 ** (bits - 1) - 1
    scale = x[rest].abs().max()  # max |rest| = 1
    q = out[rest] * qmax / scale
    assert torch.allclose(q, q.round(), atol=1e-4) and q.abs().max() <= qmax
    assert torch.allclose(out[rest], torch.round(x[rest] * qmax / scale) * scale / qmax)


def test_outliers_parameter_sets_how_many_entries_per_group_stay_exact():
    x = torch.randn(512, generator=torch.Generator().manual_seed(0))
    x[[300, 301]] = torch.tensor([-20.0, 25.0])  # both in the second group
    with_two = fake_quantize(x, "int4", "activation", outliers=2)
    assert with_two[300] == -20.0 and with_two[301] == 25.0
    without = fake_quantize(x, "int4", "activation", outliers=0)  # scale = 25: -20 -> round(-5.6)/7 * 25
    assert torch.isclose(without[300], torch.tensor(-6 * 25 / 7))
    # the rest of the group is quantized with the much coarser scale when the outliers are not removed
    assert (without[256:300] - x[256:300]).abs().mean() > 2 * (with_two[256:300] - x[256:300]).abs().mean()


def test_fp4_e1m2_values_lie_on_the_e1m2_grid_times_the_group_scale():
    x = torch.randn(4, 256, generator=torch.Generator().manual_seed(1))
    grid = [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    for role in ("weight", "activation"):
        out = fake_quantize(x, "fp4_e1m2", role)
        for group, original in zip(out, x):
            top2 = original.abs().topk(2).indices
            rest = torch.ones(256, dtype=torch.bool)
            rest[top2] = False
            assert torch.equal(group[top2], original[top2])
            scale = original[rest].abs().max() / 1.75
            assert _ratios_on_grid(group[rest], scale, grid)
            assert torch.isclose(group[rest].abs().max(), scale * 1.75)


def test_fp4_e1m2_ref_reaches_only_nine_levels():
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(2))
    for role in ("weight", "activation"):
        out = fake_quantize(x, "fp4_e1m2_ref", role)
        for group, original in zip(out, x):
            alpha = original.abs().sort().values[-3]  # max |x| after removing the top 2
            rest = group.abs() <= alpha + 1e-6
            assert int(rest.sum()) == 254
            assert _ratios_on_grid(group[rest], alpha, [0, 0.25, 0.5, 0.75, 1.0])
            assert group[rest].unique().numel() <= 9


def test_mxfp4_uses_e2m1_elements_and_a_power_of_two_scale_per_32():
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(3)) * 3
    out = fake_quantize(x, "mxfp4", "activation")
    for block, original in zip(out.view(-1, 32), x.view(-1, 32)):
        scale = 2.0 ** (torch.floor(torch.log2(original.abs().max())) - 2)
        assert float(torch.log2(scale)).is_integer()
        assert _ratios_on_grid(block, scale, [0, 0.5, 1, 1.5, 2, 3, 4, 6])
    # a hand-made block: amax 5 -> scale 2^(2-2) = 1; 5 rounds to 4 (tie to even), 7 would saturate at 6
    block = torch.tensor([5.0, 0.25, 0.75, 1.25, 2.5, 3.5, -4.9] + [0.0] * 25)
    assert fake_quantize(block, "mxfp4", "weight")[:7].tolist() == [4.0, 0.0, 1.0, 1.0, 2.0, 4.0, -4.0]


def test_nvfp4_block_scales_are_e4m3_values_and_elements_e2m1():
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(4)) * 0.02
    tensor_scale, block_scales = nv_block_scales(x)
    assert torch.equal(block_scales, block_scales.to(torch.float8_e4m3fn).float())
    out = fake_quantize(x, "nvfp4", "weight")
    for block, scale in zip(out.view(-1, 16), block_scales.view(-1)):
        assert _ratios_on_grid(block, float(scale * tensor_scale), [0, 0.5, 1, 1.5, 2, 3, 4, 6])
    assert (out - x).abs().max() < x.abs().max() * 0.25


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("role", ["weight", "activation"])
def test_padding_zero_groups_shape_and_straight_through_gradient(fmt, role):
    x = torch.randn(3, 7, 37, generator=torch.Generator().manual_seed(5), requires_grad=True)  # 777 elements
    out = fake_quantize(x, fmt, role)
    assert out.shape == x.shape and torch.isfinite(out).all()
    upstream = torch.randn_like(out)
    out.backward(upstream)
    assert torch.equal(x.grad, upstream)
    zeros = fake_quantize(torch.zeros(300), fmt, role)
    assert torch.equal(zeros, torch.zeros(300))


def test_padding_does_not_change_the_last_groups_statistics():
    x = torch.randn(300, generator=torch.Generator().manual_seed(6)) + 3.0  # all positive
    padded = fake_quantize(x, "int4", "weight")
    alone = fake_quantize(x[256:], "int4", "weight", group_size=44)
    assert torch.allclose(padded[256:], alone)


def test_unknown_format_or_role_is_a_value_error():
    with pytest.raises(ValueError, match="int5"):
        fake_quantize(torch.ones(4), "int5", "weight")
    with pytest.raises(ValueError, match="role"):
        fake_quantize(torch.ones(4), "int4", "bias")


def test_quant_linear_backward_is_the_quantized_formula():
    torch.manual_seed(0)
    linear = QuantLinear(64, 48, bias=True, fmt="int4")
    x = torch.randn(2, 5, 64, requires_grad=True)
    out = linear(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    x_q = fake_quantize(x.detach(), "int4", "activation")
    w_q = fake_quantize(linear.weight.detach(), "int4", "weight")
    assert torch.allclose(out, x_q @ w_q.t() + linear.bias, atol=1e-5)
    assert torch.allclose(x.grad, grad_out @ w_q, atol=1e-5)
    assert torch.allclose(linear.weight.grad, grad_out.reshape(-1, 48).t() @ x_q.reshape(-1, 64), atol=1e-5)
    assert torch.allclose(linear.bias.grad, grad_out.reshape(-1, 48).sum(0), atol=1e-5)


def test_quantize_model_swaps_only_the_projections_and_shares_parameters():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.down_proj, self.lm_head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    block = Block()
    weight = block.q_proj.weight
    quantize_model(block, "fp4_e1m2")
    assert isinstance(block.q_proj, QuantLinear) and isinstance(block.down_proj, QuantLinear)
    assert type(block.lm_head) is nn.Linear
    assert block.q_proj.weight is weight
    with pytest.raises(ValueError, match="no Linear"):
        quantize_model(nn.Sequential(nn.Linear(2, 2)), "int4")


def test_projections_sharing_an_input_reuse_its_quantization_until_it_changes():
    torch.manual_seed(1)
    q_proj, k_proj = QuantLinear(256, 8, fmt="int4"), QuantLinear(256, 8, fmt="int4")
    x = torch.randn(4, 256)
    x_q = fake_quantize(x, "int4", "activation")
    q_proj(x)
    w_q = fake_quantize(k_proj.weight, "int4", "weight")
    assert torch.allclose(k_proj(x), x_q @ w_q.t() + k_proj.bias, atol=1e-5)
    x.mul_(3.0)  # changed in place: must be quantized afresh
    expected = fake_quantize(x, "int4", "activation") @ fake_quantize(q_proj.weight, "int4", "weight").t() + q_proj.bias
    assert torch.allclose(q_proj(x), expected, atol=1e-5)
