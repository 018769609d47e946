"""The fused optimizers' backends (`optimizers.backends`): the native C kernels and the chunked CPU path against
the multi-tensor reference, mixed dtypes in one group, the fallback when no compiler works, and the choice of
backend made once per device."""
import copy
import pickle
import warnings

import pytest
import torch

import optimizers
import optimizers.chunked
import optimizers.native
from optimizers.backends import ForeachBackend
from optimizers.chunked import ChunkedBackend
from optimizers.grouped import select_backend
from optimizers.native import NativeBackend

# One tensor large enough that the C kernels split it over threads (> 32768 entries), and small ones.
SHAPES = [(120, 101), (7,), (3, 5), (40_000,)]
# Each run crosses a momentum reset; SPAM's spike clipping is on at steps 20-21 (from step 20, not in the first
# 20 steps after a reset), its reset falls at step 22, and its warm-up follows.
CASES = {"stable_spam": dict(reset_interval=3, total_T=5, weight_decay=0.1, steps=8),
         "spam": dict(reset_interval=22, threshold=5.0, warmup=2, weight_decay=0.1, steps=26)}


def spiky_grad(shape, step, gen, dtype):
    g = torch.randn(shape, generator=gen)
    g.view(-1)[step % g.numel()] = 50.0                    # a spike for AdaClip / SpikeClip to clip
    return g.to(dtype)


def trajectory(name, backend, dtypes, shapes=SHAPES, seeds=None):
    """For every step of ``name`` on ``backend``, per tensor: the parameter (as float) and its state tensors.
    Tensor i's values and gradients come from a generator seeded with ``seeds[i]`` (default i)."""
    hp = dict(CASES[name])
    steps = hp.pop("steps")
    gens = [torch.Generator().manual_seed(s) for s in (seeds or range(len(shapes)))]
    params = [torch.nn.Parameter((torch.randn(s, generator=g) * 0.1).to(d)) for s, d, g in zip(shapes, dtypes, gens)]
    opt = optimizers.build(name, params, lr=1e-2, **hp)
    opt.backend = backend
    out = []
    for k in range(steps):
        for p, gen in zip(params, gens):
            p.grad = spiky_grad(p.shape, k, gen, p.dtype)
        opt.step()
        out.append([[p.detach().float().clone()] + [v.clone() for v in opt.state[p].values() if torch.is_tensor(v)]
                    for p in params])
    return out, opt


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(optimizers.chunked, "CHUNK", 4096)     # several chunks per tensor
    monkeypatch.setattr(optimizers.chunked, "MIN_NUMEL", 1)    # every fp32 tensor chunked


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("backend", ["native", "chunked"])
def test_backend_matches_the_reference_across_resets(name, dtype, backend, small_chunks):
    """The native kernels round as the reference's torch operations do, except the square root: torch's
    vectorised sqrt (SLEEF, 0.5001 ulp) and C's correctly rounded one differ by 1 ulp on about 5 in 100,000
    entries, and the norms are summed in another order (in double). So >= 99% of the entries are bit-identical
    and the rest within 1e-6 of the tensor's largest entry; a bf16 parameter that once rounds the other way
    walks on by its own roundings, within 4 bf16 ulps (2^-5 relative) over these steps. The chunked path's
    Adam is torch's fused AdamW kernel, which rounds its own way: the same tolerances, no bit count."""
    if backend == "native" and optimizers.native.library() is None:
        pytest.skip("no C compiler here")
    dtypes = [dtype] * len(SHAPES)
    ref, _ = trajectory(name, "foreach", dtypes)
    got, opt = trajectory(name, backend, dtypes)
    taken = {opt.backend_for(p).name for p in opt.param_groups[0]["params"]}
    assert taken == ({backend} if dtype == torch.float32 or backend == "native" else {"foreach"})
    same = total = 0
    for step, (r, g) in enumerate(zip(ref, got), start=1):
        for tensor_r, tensor_g in zip(r, g):
            for i, (x, y) in enumerate(zip(tensor_g, tensor_r)):
                same, total = same + int((x == y).sum()), total + x.numel()
                if i == 0 and dtype == torch.bfloat16:                 # a bf16 parameter, as float
                    torch.testing.assert_close(x, y, rtol=2 ** -5, atol=0, msg=f"step {step}")
                else:
                    torch.testing.assert_close(x, y, rtol=0, atol=1e-6 * y.abs().max().item(), msg=f"step {step}")
    if backend == "native":
        assert same >= 0.99 * total


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backend", ["native", "chunked", "foreach"])
@pytest.mark.parametrize("order", [(torch.float32, torch.bfloat16), (torch.bfloat16, torch.float32)])
def test_mixed_dtypes_in_one_group_match_per_tensor_results(name, backend, order, small_chunks):
    # Issue 14.9: the work dtype was decided from the first gradient only.
    shapes = [(300, 130), (40_000,)]
    mixed, _ = trajectory(name, backend, list(order), shapes)
    for i, (shape, dtype) in enumerate(zip(shapes, order)):
        alone, _ = trajectory(name, backend, [dtype], [shape], seeds=[i])
        for step, (m, a) in enumerate(zip(mixed, alone), start=1):
            assert all(torch.equal(x, y) for x, y in zip(m[i], a[0])), f"{dtype} parameter, step {step}"


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backend", ["native", "chunked", "foreach"])
def test_step_leaves_p_grad_as_the_caller_left_it(name, backend, small_chunks):
    params = [torch.nn.Parameter(torch.randn(s)) for s in ((40_000,), (5, 5))]
    params.append(torch.nn.Parameter(torch.randn(9).bfloat16()))
    hp = dict(CASES[name])
    steps = hp.pop("steps")
    opt = optimizers.build(name, params, lr=1e-2, **hp)
    opt.backend = backend
    gen = torch.Generator().manual_seed(0)
    for k in range(steps):
        for p in params:
            p.grad = spiky_grad(p.shape, k, gen, p.dtype) * 100
        given = [p.grad.clone() for p in params]
        opt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, given)), f"step {k + 1}"


def test_backend_is_chosen_once_per_device(monkeypatch):
    calls = []
    real = optimizers.grouped.select_backend

    def counting(device, preference="auto"):
        calls.append(device)
        return real(device, preference)

    monkeypatch.setattr(optimizers.grouped, "select_backend", counting)
    params = [torch.nn.Parameter(torch.randn(10)), torch.nn.Parameter(torch.randn(3, dtype=torch.float64))]
    opt = optimizers.build("stable_spam", params)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert calls == [torch.device("cpu")]
    # a tensor the CPU backend does not take (fp64, non-contiguous) goes to the reference
    assert isinstance(opt.backend_for(params[1]), ForeachBackend)


def test_select_backend():
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert isinstance(select_backend(cpu, "foreach"), ForeachBackend)
    assert isinstance(select_backend(cpu, "chunked"), ChunkedBackend)
    assert isinstance(select_backend(meta, "auto"), ForeachBackend)       # not a CPU: the reference
    expected = NativeBackend if optimizers.native.library() is not None else ChunkedBackend
    assert isinstance(select_backend(cpu, "auto"), expected)
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend(cpu, "fast")


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """`optimizers.native.library` forgets its result, builds into ``tmp_path``, and forgets again afterwards."""
    monkeypatch.setenv("OPTIMIZERS_KERNEL_CACHE", str(tmp_path))
    optimizers.native.library.cache_clear()
    yield tmp_path
    optimizers.native.library.cache_clear()


def test_without_a_compiler_the_chunked_path_runs_after_one_warning(fresh_library, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.warns(RuntimeWarning, match="native CPU kernels unavailable.*no-such-compiler-here"):
        assert isinstance(select_backend(torch.device("cpu")), ChunkedBackend)
    p = torch.nn.Parameter(torch.randn(100_000))
    opt = optimizers.build("stable_spam", [p])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # once per process: no second warning
        p.grad = torch.randn_like(p)
        opt.step()
    assert isinstance(opt.backend_for(p), ChunkedBackend)


def test_native_kernels_can_be_turned_off_without_a_warning(fresh_library, monkeypatch):
    monkeypatch.setenv("OPTIMIZERS_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(select_backend(torch.device("cpu")), ChunkedBackend)


def test_build_is_cached_on_disk(fresh_library):
    if optimizers.native.library() is None:
        pytest.skip("no C compiler here")
    first = optimizers.native.build()
    assert first.parent == fresh_library and first.exists()
    stamp = first.stat().st_mtime_ns
    assert optimizers.native.build() == first and first.stat().st_mtime_ns == stamp
    assert [f.name for f in fresh_library.iterdir()] == [first.name]            # no temporary file left


@pytest.mark.parametrize("name", list(CASES))
def test_copies_and_pickles_continue_the_same_run(name):
    params = [torch.nn.Parameter(torch.randn(70_000)), torch.nn.Parameter(torch.randn(4, 4))]
    opt = optimizers.build(name, params, reset_interval=3)
    gen = torch.Generator().manual_seed(0)
    grads = [[torch.randn(p.shape, generator=gen) for p in params] for _ in range(6)]
    for gs in grads[:2]:
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()
    twins = [copy.deepcopy((params, opt)), pickle.loads(pickle.dumps((params, opt)))]
    for ps, o in [(params, opt)] + twins:
        for gs in grads[2:]:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            o.step()
    for ps, _ in twins:
        assert all(torch.equal(a, b) for a, b in zip(ps, params))


def test_hyper_parameters_positionally_and_in_the_signature():
    import inspect

    p = torch.nn.Parameter(torch.randn(3))
    opt = optimizers.StableSPAM([p], 0.01, (0.8, 0.9))
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["betas"] == (0.8, 0.9)
    assert list(inspect.signature(optimizers.StableSPAM).parameters)[1:] == list(optimizers.stable_spam.DEFAULTS)
    assert inspect.signature(optimizers.SPAM).parameters["threshold"].default == 5000.0
    with pytest.raises(TypeError, match="multiple values"):
        optimizers.SPAM([p], 0.01, lr=0.1)
    assert optimizers.get_recipe("stable_spam").defaults == optimizers.stable_spam.DEFAULTS
    assert optimizers.get_recipe("stable_spam_ref").defaults == optimizers.stable_spam.DEFAULTS
    chain = optimizers.get_recipe("adam+moret+adagn+adaclip").defaults
    assert dict(chain) == optimizers.stable_spam.DEFAULTS


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_step_matches_the_cpu_reference(name):
    dtypes = [torch.float32] * len(SHAPES)
    cpu, _ = trajectory(name, "foreach", dtypes)
    hp = dict(CASES[name])
    steps = hp.pop("steps")
    gen = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.1).cuda()) for s in SHAPES]
    opt = optimizers.build(name, params, lr=1e-2, **hp)
    for k in range(steps):
        for p in params:
            p.grad = spiky_grad(p.shape, k, gen, p.dtype).cuda()
        opt.step()
    for p, ref in zip(params, cpu[-1]):
        torch.testing.assert_close(p.detach().cpu(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("module", [optimizers.stable_spam, optimizers.spam])
def test_the_readme_lists_the_defaults_table(module):
    """The defaults are written once (the module's DEFAULTS); the README's line is checked against it."""
    from pathlib import Path

    readme = " ".join((Path(optimizers.__file__).parent / "README.md").read_text().split())
    listed = ", ".join(f"{k} {v}" for k, v in module.DEFAULTS.items())
    assert f"Defaults (`{module.__name__}.DEFAULTS`" in readme and listed in readme
