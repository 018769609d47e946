"""`NativeBackend`: the fused optimizers' passes as C kernels (``native_cpu.c``), built at first use.

The kernels are plain C (no torch headers), compiled with the system's C compiler (``$CC``, else ``cc``) into
a shared library cached on disk (``$OPTIMIZERS_KERNEL_CACHE``, else ``~/.cache/stable-spam-bench/kernels``),
keyed by the source, the flags, the compiler's version and the CPU, and called through ``ctypes``. A cold
build takes about a second; later processes load the cached library. When torch runs on GNU OpenMP (the
Linux wheels) the kernels use it too, so they run on torch's threads (``torch.set_num_threads``).

When no compiler works, `library` warns once and returns None, and the optimizers use
`optimizers.chunked.ChunkedBackend`; ``OPTIMIZERS_NATIVE=0`` turns the kernels off without a warning.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from .backends import AdaClipScalars, AdamArgs, Backend

SOURCE = Path(__file__).with_name("native_cpu.c")
FLAGS = ("-O3", "-march=native", "-std=gnu11", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno")
#: x86 only: let GCC use AVX-512's full width where the CPU has it (the double-precision norm gains most).
X86_FLAGS = ("-mprefer-vector-width=512",)
#: Parameter dtypes the kernels take, with their codes in ``native_cpu.c``.
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
_CLIP_NONE, _CLIP_ADACLIP, _CLIP_SPIKE = 0, 1, 2


class BuildError(RuntimeError):
    """The kernels could not be built or loaded."""


def cache_dir() -> Path:
    """Where built libraries are kept."""
    configured = os.environ.get("OPTIMIZERS_KERNEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stable-spam-bench" / "kernels"


def _torch_on_gnu_openmp() -> bool:
    """Whether this process has GNU OpenMP loaded (torch's Linux wheels bring it): then the kernels link the
    same runtime (by soname) and share torch's thread pool; elsewhere they are built single-threaded."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def _cpu_signature() -> str:
    """The CPU's feature flags (``-march=native`` builds for them) where Linux tells them, else its name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def build(cache: Path | None = None) -> Path:
    """Compile ``native_cpu.c`` unless a library for this source, compiler and CPU is cached; its path.
    Raises `BuildError` when no compiler works."""
    cc = os.environ.get("CC") or "cc"
    compiler = shutil.which(cc)
    if compiler is None:
        raise BuildError(f"no C compiler {cc!r} on PATH")
    flags = list(FLAGS) + (["-fopenmp"] if _torch_on_gnu_openmp() else [])
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += X86_FLAGS
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"{cc} --version failed: {exc}") from exc
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), version.encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    folder = cache or cache_dir()
    target = folder / f"native_cpu-{key}.so"
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
        os.close(fd)
        done = subprocess.run([compiler, *flags, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            raise BuildError(f"{cc} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)          # atomic: concurrent builders leave one complete file
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"building {SOURCE.name} failed: {exc}") from exc
    return target


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    ptr, ptrs = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    i64s, i32s, f32 = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int32), ctypes.c_float
    c_int = ctypes.c_int
    lib.ss_abs_max.argtypes = [c_int, ptrs, i64s, i32s, ptr, c_int]
    lib.ss_clip_norm.argtypes = [c_int, ptrs, i64s, i32s, ptr, ptr, ptr, ptr, ptr, c_int]
    lib.adam_step.argtypes = [c_int, ptrs, ptrs, ptrs, ptrs, i64s, i32s, c_int, ptr, ptr, ptr, ptr, f32, ptr, ptr,
                              f32, f32, f32, f32, f32, c_int]
    for fn in (lib.ss_abs_max, lib.ss_clip_norm, lib.adam_step):
        fn.restype = None
    return lib


@functools.cache
def library() -> ctypes.CDLL | None:
    """The kernels' library, built or loaded once per process; None when ``OPTIMIZERS_NATIVE=0`` or, with one
    warning, when it cannot be built."""
    if os.environ.get("OPTIMIZERS_NATIVE", "1") == "0":
        return None
    try:
        return _declare(ctypes.CDLL(str(build())))
    except (BuildError, OSError, AttributeError) as exc:
        warnings.warn(f"optimizers: native CPU kernels unavailable ({exc}); StableSPAM and SPAM fall back to "
                      "the slower chunked CPU path", RuntimeWarning, stacklevel=2)
        return None


def _pointers(tensors: list[Tensor]) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


def _ptr(t: Tensor) -> int:
    assert t.dtype == torch.float32 and t.is_contiguous(), "per-tensor scalars are contiguous float32"
    return t.data_ptr()


class NativeBackend(Backend):
    """`optimizers.backends.Backend` as C kernels: fp32 or bf16 dense contiguous CPU parameters (fp32 state),
    any size; the clip and the AdaGN scale (or SPAM's spike clipping) inline in the Adam pass."""

    name = "native"

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib

    def takes(self, param: Tensor) -> bool:
        grad = param.grad
        return (param.device.type == "cpu" and param.dtype in DTYPE_CODES and param.is_contiguous()
                and grad is not None and grad.dtype == param.dtype and grad.layout == torch.strided
                and grad.is_contiguous())

    @staticmethod
    def _layout(tensors: list[Tensor]) -> tuple[ctypes.Array, ctypes.Array]:
        n = len(tensors)
        return ((ctypes.c_int64 * n)(*[t.numel() for t in tensors]),
                (ctypes.c_int32 * n)(*[DTYPE_CODES[t.dtype] for t in tensors]))

    def abs_max(self, grads: list[Tensor], dtype: torch.dtype) -> Tensor:
        out = torch.empty(len(grads), dtype=torch.float32)
        self._lib.ss_abs_max(len(grads), _pointers(grads), *self._layout(grads), out.data_ptr(),
                             torch.get_num_threads())
        return out.to(dtype)

    def clip_norm(self, grads: list[Tensor], clip: AdaClipScalars, count: bool) -> tuple[Tensor, Tensor | None]:
        n = len(grads)
        norms = torch.empty(n, dtype=torch.float32)
        counts = torch.empty(n, dtype=torch.float32) if count else None
        self._lib.ss_clip_norm(n, _pointers(grads), *self._layout(grads), _ptr(clip.threshold), _ptr(clip.w_clip),
                               _ptr(clip.w_keep), norms.data_ptr(), counts.data_ptr() if counts is not None else None,
                               torch.get_num_threads())
        return norms, counts

    def adam(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
             args: AdamArgs, *, adaclip: AdaClipScalars | None = None, spike_threshold: float = 0.0) -> None:
        n = len(params)
        if not all(t.dtype == torch.float32 and t.is_contiguous() for t in exp_avgs + exp_avg_sqs):
            raise RuntimeError("NativeBackend: the moments must be contiguous float32 tensors")
        sizes, epss = args.folded()
        floats = ctypes.c_float * n
        clip: tuple = (None, None, None, None)
        if adaclip is not None:
            assert adaclip.factor is not None, "adaclip.factor is set once the norm is known"
            mode = _CLIP_ADACLIP
            clip = (_ptr(adaclip.threshold), _ptr(adaclip.w_clip), _ptr(adaclip.w_keep), _ptr(adaclip.factor))
        else:
            mode = _CLIP_SPIKE if spike_threshold > 0 else _CLIP_NONE
        self._lib.adam_step(n, _pointers(params), _pointers(grads), _pointers(exp_avgs), _pointers(exp_avg_sqs),
                            *self._layout(params), mode, *clip, spike_threshold, floats(*sizes), floats(*epss),
                            1 - args.beta1, args.beta2, 1 - args.beta2, args.decay_before, args.decay_after,
                            torch.get_num_threads())
