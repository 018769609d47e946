"""`CompiledBackend`: the fused optimizers' passes compiled by ``torch.compile`` (inductor), for accelerators.

Each pass of `optimizers.backends.Backend` (``abs_max``, ``clip_norm``, ``adam``) is one Python function over the
whole tensor list, compiled once per process with ``fullgraph=True, dynamic=False``. Inductor fuses each
tensor's chain of elementwise operations into one loop (on CUDA a Triton kernel; ``combo_kernels`` joins the
tensors' kernels into one launch per pass; on CPU a C++ loop), so the Adam pass reads ``p, g, m, v`` and writes
``p, m, v`` once, with the AdaClip clip and AdaGN scale (or SPAM's spike clipping) inline.

No recompilation per step: every hyper-parameter and per-step scalar (bias corrections folded into the step
size and eps, beta1 under the cosine decay, weight decay factors, SPAM's threshold, which is 0 where clipping is
off) reaches the graphs as tensors, copied to the device in one non-blocking copy per pass. Graphs are
specialised on the tensor list (count, shapes, dtypes), so each partition of a model compiles once, the first
time it steps (cold compile: seconds; inductor caches compiled code on disk for later processes). No pass
synchronises with the host.

It rounds like the reference `optimizers.backends.ForeachBackend` up to the order of the double-precision sums
in the norm and what the compiler does with the same operations (tested on CPU, where inductor emits C++, in
``tests/optimizers/test_compiled_backend.py``). When compilation fails (no C++ compiler for CPU, no Triton, an
operation inductor cannot lower) the backend warns once and runs the reference from then on;
``OPTIMIZERS_COMPILE=0`` keeps accelerators on the reference without trying.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import torch
from torch import Tensor

from .backends import AdaClipScalars, AdamArgs, Backend, ForeachBackend

#: Parameter dtypes the compiled passes take (state fp32); the others go to the reference.
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_REFERENCE = ForeachBackend()
_warned = False


def enabled() -> bool:
    """Whether the compiled backend may be used (``OPTIMIZERS_COMPILE=0`` turns it off)."""
    return os.environ.get("OPTIMIZERS_COMPILE", "1") != "0"


def compile_options(device_type: str) -> dict[str, Any]:
    """Inductor options for the passes on ``device_type``: casts rounded as in eager; on CUDA the per-tensor
    kernels of a pass joined into combo kernels (one launch per pass instead of one per tensor)."""
    # emulate_precision_casts: a bf16 parameter is rounded where the reference rounds it (inductor would
    # otherwise keep the fp32 value across ``.to(bfloat16).to(float32)``)
    options: dict[str, Any] = {"emulate_precision_casts": True}
    if device_type == "cuda":
        options["combo_kernels"] = True
    return options


# --- the passes (plain PyTorch; torch.compile fuses them) ------------------------------------------------


def abs_max_pass(grads: list[Tensor], dtype: torch.dtype) -> Tensor:
    """``max|g|`` of each gradient, stacked, in ``dtype``."""
    return torch.stack([g.abs().amax().to(dtype) for g in grads])


def clip_norm_pass(grads: list[Tensor], threshold: Tensor, w_clip: Tensor, w_keep: Tensor,
                   count: bool) -> tuple[Tensor, Tensor | None]:
    """Per tensor, the L2 norm of ``x = g * (w_clip if |g| > threshold else w_keep)`` (squares summed in double),
    and with ``count`` the number of entries clipped, both in the scalars' dtype."""
    dtype = threshold.dtype
    norms, counts = [], []
    for i, g in enumerate(grads):
        x = g.to(dtype)
        over = x.abs() > threshold[i]
        x = x * torch.where(over, w_clip[i], w_keep[i])
        norms.append(x.to(torch.float64).square().sum().sqrt())
        if count:
            counts.append(over.sum(dtype=dtype))
    return torch.stack(norms).to(dtype), (torch.stack(counts) if count else None)


def adam_pass(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
              scalars: Tensor, clip: tuple[Tensor, Tensor, Tensor, Tensor] | None) -> None:
    """Adam on the transformed gradient, in place, one fused loop per tensor. ``scalars`` (state dtype) holds
    ``n`` step sizes, ``n`` eps terms, then ``1-beta1, beta2, 1-beta2, decay_before, decay_after,
    spike_threshold``; ``clip`` is AdaClip's ``(threshold, w_clip, w_keep, factor)`` or None (then SPAM's spike
    clipping where ``spike_threshold > 0``). The operations and their order are the reference's, so that they
    round alike: ``lerp`` for m, ``v*beta2 + ((1-beta2)*u)*u``, ``p + (step*m)/(sqrt(v)+eps)``, the parameter
    rounded to its dtype after each of the three writes."""
    n = len(params)
    sizes, eps_terms = scalars[:n], scalars[n:2 * n]
    one_minus_beta1, beta2, one_minus_beta2, decay_before, decay_after, spike = scalars[2 * n:].unbind()
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        u = g.to(m.dtype)
        if clip is not None:
            threshold, w_clip, w_keep, factor = clip
            u = u * torch.where(u.abs() > threshold[i], w_clip[i], w_keep[i])
            u = u * factor[i]
        else:
            bound = (v * spike).sqrt()
            u = torch.where(spike > 0, torch.clamp(u, min=-bound, max=bound), u)
        new_m, new_v, decayed = _moments(p, u, m, v, one_minus_beta1, beta2, one_minus_beta2, decay_before)
        denom = new_v.sqrt() + eps_terms[i]
        if p.device.type == "cpu":           # eager CPU: a + (s*b)/c
            stepped = decayed + (sizes[i] * new_m) / denom
        else:                                 # eager CUDA: fma(s, b/c, a)
            stepped = _fma(sizes[i], new_m / denom, decayed)
        stepped = stepped.to(p.dtype).to(m.dtype)
        m.copy_(new_m)
        v.copy_(new_v)
        p.copy_(stepped * decay_after)


def _moments(p: Tensor, u: Tensor, m: Tensor, v: Tensor, one_minus_beta1: Tensor, beta2: Tensor,
             one_minus_beta2: Tensor, decay_before: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The new moments and the decayed parameter (in the state dtype, rounded through the parameter's), each
    rounded as the eager kernels of the reference round on the device: on CPU ``lerp`` is
    ``fma(w or w-1, end-start, start or end)`` and ``addcmul`` is ``fma(value*t1, t2, self)``; on CUDA torch's
    ``lerp`` (inductor lowers it as eager CUDA computes it) and ``fma(value, t1*t2, self)``."""
    diff = u - m
    if p.device.type == "cpu":
        small = one_minus_beta1 < 0.5
        new_m = _fma(torch.where(small, one_minus_beta1, one_minus_beta1 - 1), diff, torch.where(small, m, u))
        new_v = _fma(one_minus_beta2 * u, u, v * beta2)
    else:
        new_m = torch.lerp(m, u, one_minus_beta1)
        new_v = _fma(one_minus_beta2, u * u, v * beta2)
    decayed = (p.to(m.dtype) * decay_before).to(p.dtype).to(m.dtype)
    return new_m, new_v, decayed


def _fma(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``a*b + c`` rounded once (inductor's fused multiply-add; only meaningful under torch.compile)."""
    a, b, c = torch.broadcast_tensors(a, b, c)
    return torch.ops.prims.fma(a, b, c)


_PASSES: dict[str, Callable] = {"abs_max": abs_max_pass, "clip_norm": clip_norm_pass, "adam": adam_pass}
_compiled: dict[tuple[str, str], Callable] = {}


def compiled_pass(name: str, device_type: str) -> Callable:
    """The pass ``name`` wrapped by ``torch.compile`` for ``device_type`` (made once per process; compilation
    itself happens at the first call for each tensor list)."""
    key = (name, device_type)
    if key not in _compiled:
        import torch._inductor.inductor_prims  # noqa: F401  (registers torch.ops.prims.fma; slow, so only here)
        _compiled[key] = torch.compile(_PASSES[name], fullgraph=True, dynamic=False,
                                       options=compile_options(device_type))
    return _compiled[key]


def _warn_once(message: str) -> None:
    """One RuntimeWarning per process about the compiled step."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"compiled optimizer step unavailable: {message}", RuntimeWarning, stacklevel=5)


class CompiledBackend(Backend):
    """The passes of `optimizers.backends.Backend` compiled by ``torch.compile`` (see the module docstring);
    `ForeachBackend` after a failed compilation (``failure`` says why)."""

    name = "compiled"

    def __init__(self) -> None:
        self.failure: str | None = None

    def takes(self, param: Tensor) -> bool:
        return param.dtype in DTYPES and param.layout == torch.strided and param.numel() > 0

    def _run(self, name: str, device: torch.device, *args: Any) -> tuple[bool, Any]:
        """``(True, result)`` of the compiled pass, or ``(False, None)`` when it cannot be compiled: then once
        per process a warning, and this backend runs the reference from now on (or, when dynamo's recompile
        limit is reached, for the tensor lists beyond it)."""
        if self.failure is not None:
            return False, None
        try:
            return True, compiled_pass(name, device.type)(*args)
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            _warn_once(f"{name}: more tensor lists than torch._dynamo.config.recompile_limit; those run "
                       "the multi-tensor reference")
            return False, None
        except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.Unsupported,
                torch._dynamo.exc.InternalTorchDynamoError, OSError) as err:
            # compilation happens before any kernel runs, so nothing has been written yet
            self.failure = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            _warn_once(f"{self.failure[:300]}; using the multi-tensor reference (set OPTIMIZERS_COMPILE=0 to "
                       "skip the attempt)")
            return False, None

    def abs_max(self, grads: list[Tensor], dtype: torch.dtype) -> Tensor:
        ok, out = self._run("abs_max", grads[0].device, grads, dtype)
        return out if ok else _REFERENCE.abs_max(grads, dtype)

    def clip_norm(self, grads: list[Tensor], clip: AdaClipScalars, count: bool) -> tuple[Tensor, Tensor | None]:
        ok, out = self._run("clip_norm", grads[0].device, grads, clip.threshold, clip.w_clip, clip.w_keep, count)
        return out if ok else _REFERENCE.clip_norm(grads, clip, count)

    def adam(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
             args: AdamArgs, *, adaclip: AdaClipScalars | None = None, spike_threshold: float = 0.0) -> None:
        sizes, eps_terms = args.folded()
        host = sizes + eps_terms + [1 - args.beta1, args.beta2, 1 - args.beta2, args.decay_before,
                                    args.decay_after, spike_threshold if adaclip is None else 0.0]
        device = params[0].device
        scalars = torch.tensor(host, dtype=exp_avgs[0].dtype).to(device, non_blocking=True)
        clip = None
        if adaclip is not None:
            assert adaclip.factor is not None, "adaclip.factor is set once the norm is known"
            clip = (adaclip.threshold, adaclip.w_clip, adaclip.w_keep, adaclip.factor)
        ok, _ = self._run("adam", device, params, grads, exp_avgs, exp_avg_sqs, scalars, clip)
        if not ok:
            _REFERENCE.adam(params, grads, exp_avgs, exp_avg_sqs, args, adaclip=adaclip,
                            spike_threshold=spike_threshold)
