"""Simulated low-precision training: fake quantization and quantization-aware Linear layers.

:func:`fake_quantize` returns the *dequantized* values of a tensor in a low-bit format, so a model keeps
computing in its own dtype while seeing exactly the values the format can hold. Gradients pass through
unchanged (straight-through estimator). :class:`QuantLinear` quantizes both its weight and its input in
the forward pass and uses the quantized tensors in the backward pass (grad_input = grad_out @ W_q,
grad_W = grad_out^T @ x_q), as the Stable-SPAM authors' QAT code does; master weights and gradients stay
in full precision. :func:`quantize_model` swaps it in for a transformer's projection Linears.

Under ``torch.autocast`` (the paper's 4-bit runs: a bf16 model with fake-quantized projections) a
:class:`QuantLinear` computes as ``nn.Linear`` does there: the fake quantization runs in fp32 (the grid is
exact), the quantized input and weight are then cast to the autocast dtype, both the forward and the
backward matmuls run in that dtype, and the gradients come back in the dtypes of the input and of the
(fp32) master weight.

Formats (SPEC §2.1). Groups are runs of ``group_size`` consecutive elements of the flattened contiguous
tensor, as in the authors' code: along the last dimension (input features of a weight, hidden features
of an activation), spanning several rows when that dimension is shorter than the group. A tensor whose
size is not a multiple of the group is padded (never changing a group's statistics).

* ``int2/int3/int4/int8`` -- weights: asymmetric unsigned b-bit per group, ``scale = (max-min)/(2^b-1)``,
  zero-point ``clamp(-round(min/scale))``, round-to-nearest. Activations: symmetric b-bit per group, the
  ``outliers`` largest-magnitude entries kept exact, ``scale = max|rest|``,
  ``q = clamp(round(x*(2^(b-1)-1)/scale), -2^(b-1), 2^(b-1)-1)``.
* ``fp4_e1m2`` -- true E1M2 (bias 1): magnitudes {0,.25,.5,.75,1,1.25,1.5,1.75} x a per-group scale that
  maps ``max|rest|`` to 1.75, with the outlier rule, for weights and activations. With one exponent bit
  the E1M2 grid is uniform (step .25), i.e. the symmetric 15-level grid -7..7 times ``max|rest|/7``.
* ``fp4_e1m2_ref`` -- the authors' FP4 formula, which only ever reaches {0, ±.25, ±.5, ±.75, ±1} x alpha
  (alpha = ``max|rest|``), for weights and activations.
* ``mxfp4`` -- OCP MX: E2M1 elements {0,.5,1,1.5,2,3,4,6} with a shared power-of-two (E8M0) scale per 32
  elements, ``2^(floor(log2 amax) - 2)``; values beyond 6 saturate. No outliers, ``group_size`` ignored.
* ``nvfp4`` -- NVIDIA NVFP4: E2M1 elements, a scale per 16 elements stored in FP8 E4M3 (rounded to the
  nearest E4M3 value) on top of a per-tensor FP32 scale ``amax_tensor/(6*448)`` that keeps the block
  scales inside E4M3's range. No outliers, ``group_size`` ignored.

Everything is vectorised over groups (one ``(groups, group_size)`` view, ``topk`` for the outliers);
there are no Python loops over groups. Runs in eager mode on purpose: torch.compile of the padded
per-group code has been seen to miscompile on this torch version.
"""

from __future__ import annotations

import weakref
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INT_BITS = {"int2": 2, "int3": 3, "int4": 4, "int8": 8}
FORMATS = (*INT_BITS, "fp4_e1m2", "fp4_e1m2_ref", "mxfp4", "nvfp4")
ROLES = ("weight", "activation")
# The Linear layers of a LLaMA-style block that QAT quantizes (embeddings, lm_head and norms stay full).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

MX_BLOCK = 32
NV_BLOCK = 16
E2M1_MAX = 6.0
E4M3_MAX = 448.0
# Scale floors of the authors' code: they keep an all-zero group from dividing by zero.
_ASYM_RANGE_FLOOR = 1e-5
_SYM_SCALE_FLOOR = 1e-6


def fake_quantize(x: Tensor, fmt: str, role: str, group_size: int = 256, outliers: int = 2) -> Tensor:
    """Dequantized values of ``x`` in format ``fmt`` for ``role`` ("weight" or "activation").

    Differentiable with the straight-through estimator: the gradient passes through unchanged.
    ``group_size`` and ``outliers`` apply to the int and FP4-E1M2 formats (see the module docstring).
    """
    check_format(fmt, role)
    return _StraightThrough.apply(x, fmt, role, group_size, outliers)


def check_format(fmt: str, role: str = "weight") -> None:
    """Raise ValueError naming the problem when ``fmt`` or ``role`` is unknown."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown quantization format {fmt!r} (choose from {', '.join(FORMATS)})")
    if role not in ROLES:
        raise ValueError(f"unknown quantization role {role!r} (choose 'weight' or 'activation')")


@torch.no_grad()
def quantize_values(x: Tensor, fmt: str, role: str, group_size: int = 256, outliers: int = 2) -> Tensor:
    """The dequantized tensor (no autograd); :func:`fake_quantize` without the straight-through wrapper."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if fmt in INT_BITS and role == "weight":
        out = _per_group(work, group_size, _asymmetric_uint, bits=INT_BITS[fmt], pad_with_last=True)
    elif fmt in INT_BITS:
        qmax = 2 ** (INT_BITS[fmt] - 1) - 1
        out = _per_group(work, group_size, _symmetric, qmax=qmax, qmin=-qmax - 1, outliers=outliers)
    elif fmt == "fp4_e1m2":
        out = _per_group(work, group_size, _symmetric, qmax=7, qmin=-7, outliers=outliers)
    elif fmt == "fp4_e1m2_ref":
        out = _per_group(work, group_size, _symmetric, qmax=4, qmin=-4, outliers=outliers)
    elif fmt == "mxfp4":
        out = _per_group(work, MX_BLOCK, _mx_e2m1)
    else:
        tensor_scale = _nv_tensor_scale(work)
        out = _per_group(work, NV_BLOCK, _nv_e2m1, tensor_scale=tensor_scale)
    return out.to(x.dtype)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, fmt, role, group_size, outliers):
        return quantize_values(x, fmt, role, group_size, outliers)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


# --- grouping -------------------------------------------------------------------------------------


def _per_group(x: Tensor, group: int, quantizer, pad_with_last: bool = False, **kwargs) -> Tensor:
    """Apply ``quantizer`` to the ``(n_groups, group)`` view of flattened ``x``; undo padding and shape.

    Padding copies the last element (leaves min/max unchanged) or adds zeros (never an outlier nor a
    larger max than a real entry); either way a group's statistics are those of its real entries.
    """
    flat = x.reshape(-1)
    n = flat.numel()
    pad = (-n) % group
    if pad:
        filler = flat[-1:].expand(pad) if pad_with_last and n else flat.new_zeros(pad)
        flat = torch.cat([flat, filler])
    out = quantizer(flat.view(-1, group), **kwargs).reshape(-1)
    if pad:
        out = out[:n]
    return out.view(x.shape)


def _asymmetric_uint(g: Tensor, bits: int) -> Tensor:
    """Round-to-nearest unsigned ``bits``-bit with per-group scale and zero-point (authors' weight code)."""
    levels = 2**bits - 1
    low, high = torch.aminmax(g, dim=1, keepdim=True)
    scale = (high - low).clamp_(min=_ASYM_RANGE_FLOOR).div_(levels)
    zero = torch.round(-low / scale).clamp_(0, levels)
    q = torch.round(g / scale).add_(zero).clamp_(0, levels)
    return q.sub_(zero).mul_(scale)


def _symmetric(g: Tensor, qmax: int, qmin: int, outliers: int) -> Tensor:
    """Symmetric uniform grid ``[qmin, qmax] * scale/qmax`` with ``scale = max|rest|``; outliers exact.

    The ``outliers`` largest magnitudes of each group (found with one ``topk``, which also yields the
    scale as the next largest) are written back unchanged after the whole group is quantized.
    """
    if outliers > 0:
        top = g.abs().topk(outliers + 1, dim=1, sorted=True)
        scale = top.values[:, outliers:]
    else:
        scale = g.abs().amax(dim=1, keepdim=True)
    scale = scale.clamp_(min=_SYM_SCALE_FLOOR)
    q = torch.round(g * (qmax / scale)).clamp_(qmin, qmax).mul_(scale / qmax)
    if outliers > 0:
        kept = top.indices[:, :outliers]
        q.scatter_(1, kept, g.gather(1, kept))
    return q


def _round_e2m1(y: Tensor) -> Tensor:
    """Round to the nearest FP4 E2M1 value (ties to even mantissa), saturating at ±6."""
    mag = y.abs()
    # E2M1 spacing: .5 below 2, 1 in [2, 4), 2 in [4, 6]; torch.round's half-to-even matches E2M1's.
    step = torch.where(mag < 2, 0.5, torch.where(mag < 4, 1.0, 2.0))
    return torch.round(mag / step).mul_(step).clamp_(max=E2M1_MAX).copysign_(y)


def _mx_e2m1(g: Tensor) -> Tensor:
    """MXFP4 block: shared scale ``2^(floor(log2 amax) - 2)`` (E8M0, exponent in [-127, 127])."""
    amax = g.abs().amax(dim=1, keepdim=True)
    _, exponent = torch.frexp(amax)  # amax = m * 2^e, m in [0.5, 1): floor(log2 amax) = e - 1
    shared = (exponent - 1 - 2).clamp_(-127, 127)
    shared = torch.where(amax > 0, shared, torch.zeros_like(shared))
    scale = torch.ldexp(torch.ones_like(amax), shared)
    return _round_e2m1(g / scale).mul_(scale)


def nv_block_scales(x: Tensor) -> tuple[Tensor, Tensor]:
    """NVFP4 scales of ``x``: the per-tensor FP32 scale and the per-16 E4M3 block scales (as floats).

    The block ``i`` is dequantized with ``block_scales[i] * tensor_scale``; ``block_scales`` holds only
    values representable in FP8 E4M3.
    """
    tensor_scale = _nv_tensor_scale(x.float())
    flat = x.float().reshape(-1)
    pad = (-flat.numel()) % NV_BLOCK
    groups = torch.cat([flat, flat.new_zeros(pad)]).view(-1, NV_BLOCK)
    return tensor_scale, _nv_block_scale(groups, tensor_scale)


def _nv_tensor_scale(x: Tensor) -> Tensor:
    amax = x.abs().amax()
    return torch.where(amax > 0, amax / (E2M1_MAX * E4M3_MAX), torch.ones_like(amax))


def _nv_block_scale(g: Tensor, tensor_scale: Tensor) -> Tensor:
    wanted = g.abs().amax(dim=1, keepdim=True) / (E2M1_MAX * tensor_scale)
    return wanted.clamp_(max=E4M3_MAX).to(torch.float8_e4m3fn).float()


def _nv_e2m1(g: Tensor, tensor_scale: Tensor) -> Tensor:
    """NVFP4 block: E2M1 values times (E4M3 block scale x FP32 tensor scale)."""
    scale = _nv_block_scale(g, tensor_scale) * tensor_scale
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # a zero scale means an all-zero block
    return _round_e2m1(g / safe).mul_(scale)


# --- quantization-aware Linear --------------------------------------------------------------------


class _LastActivation:
    """The most recently quantized activation, so projections fed the same tensor quantize it once.

    In a LLaMA block q/k/v_proj share one input and gate/up_proj another: this cuts the activation
    quantizations per block from 7 to 4. A hit needs the very same tensor object (held by weak
    reference), unmodified since (same ``_version``), and the same format settings.
    """

    def __init__(self):
        self._source, self._key, self._value = None, None, None

    def quantized(self, x: Tensor, fmt: str, group_size: int, outliers: int,
                  dtype: torch.dtype | None = None) -> Tensor:
        """``x`` fake-quantized as an activation (in fp32), then cast to ``dtype`` (None: ``x``'s dtype)."""
        if torch.compiler.is_compiling():  # the graph dedupes the repeated quantization itself; no side effects
            value = quantize_values(x, fmt, "activation", group_size, outliers)
            return value.to(dtype) if dtype is not None else value
        key = (x._version, fmt, group_size, outliers, dtype)
        if self._source is not None and self._source() is x and self._key == key:
            return self._value
        value = quantize_values(x, fmt, "activation", group_size, outliers)
        if dtype is not None:
            value = value.to(dtype)
        self._source, self._key, self._value = weakref.ref(x), key, value
        return value


_last_activation = _LastActivation()


class _QuantLinearFunction(torch.autograd.Function):
    """y = x_q @ W_q^T + b; backward uses the quantized tensors and returns full-precision gradients.

    Outside autocast the matmuls run in the tensors' own dtypes. Under autocast they run in the autocast
    dtype (x_q, W_q and b cast to it after the fp32 fake quantization), backward included, whatever autocast
    state the backward pass itself runs under; grad_x, grad_W and grad_b are returned in the dtypes of x,
    W and b (a bf16 grad_W of an fp32 master weight is cast up, as autocast's ``nn.Linear`` does).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, fmt, group_size, outliers):
        ctx.grad_dtypes = (x.dtype, weight.dtype, bias.dtype if bias is not None else None)
        compute = _QuantLinearFunction.autocast_dtype(x)
        x_q = _last_activation.quantized(x, fmt, group_size, outliers, compute)
        w_q = quantize_values(weight, fmt, "weight", group_size, outliers)
        if compute is not None:
            w_q = w_q.to(compute)
            bias = bias.to(compute) if bias is not None else None
        ctx.save_for_backward(x_q, w_q)
        ctx.has_bias = bias is not None
        with _QuantLinearFunction.autocast_off(x.device.type):
            return F.linear(x_q, w_q, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x_q, w_q = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype = ctx.grad_dtypes
        grad_x = grad_w = grad_b = None
        # A backward called inside an autocast region (gradient accumulation) must not re-cast these matmuls.
        with _QuantLinearFunction.autocast_off(grad_out.device.type):
            grad_out = grad_out.to(w_q.dtype)
            if ctx.needs_input_grad[0]:
                grad_x = (grad_out @ w_q).to(x_dtype)
            flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
            if ctx.needs_input_grad[1]:
                grad_w = (flat_grad.t() @ x_q.reshape(-1, x_q.shape[-1])).to(w_dtype)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = flat_grad.sum(0, dtype=torch.promote_types(flat_grad.dtype, torch.float32)).to(b_dtype)
        return grad_x, grad_w, grad_b, None, None, None

    @staticmethod
    def autocast_dtype(x: Tensor) -> torch.dtype | None:
        """The dtype autocast would run a Linear on ``x`` in, or None when autocast is off for its device.

        Like autocast itself, float64 inputs are left alone.
        """
        device = x.device.type
        if (not torch.amp.is_autocast_available(device) or not torch.is_autocast_enabled(device)
                or x.dtype == torch.float64):
            return None
        return torch.get_autocast_dtype(device)

    @staticmethod
    def autocast_off(device: str):
        """A context turning autocast off on ``device`` (a no-op where autocast does not exist)."""
        return torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext()


class QuantLinear(nn.Linear):
    """An ``nn.Linear`` trained quantization-aware: weight and input are fake-quantized in ``fmt``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, fmt: str = "int4",
                 group_size: int = 256, outliers: int = 2, device=None, dtype=None):
        check_format(fmt)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.fmt, self.group_size, self.outliers = fmt, group_size, outliers

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str, group_size: int = 256, outliers: int = 2) -> "QuantLinear":
        """A QuantLinear sharing ``linear``'s parameters (no copy, same Parameter objects)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, fmt, group_size, outliers,
                    device="meta")
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer

    def forward(self, x: Tensor) -> Tensor:
        return _QuantLinearFunction.apply(x, self.weight, self.bias, self.fmt, self.group_size, self.outliers)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fmt={self.fmt}, group_size={self.group_size}, outliers={self.outliers}"


def quantize_model(model: nn.Module, fmt: str, group_size: int = 256, outliers: int = 2,
                   targets: tuple[str, ...] = PROJECTIONS) -> nn.Module:
    """Swap every ``nn.Linear`` whose attribute name is in ``targets`` for a :class:`QuantLinear` (in place).

    Parameters are shared, not copied, so an optimizer built afterwards sees the same tensors. Returns
    ``model``; raises ValueError when no target Linear was found (a wrong model or target list).
    """
    check_format(fmt)
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and type(child) is nn.Linear:
                setattr(parent, name, QuantLinear.from_linear(child, fmt, group_size, outliers))
                swapped += 1
    if not swapped:
        raise ValueError(f"quantize_model found no Linear named {', '.join(targets)} in {type(model).__name__}")
    return model
