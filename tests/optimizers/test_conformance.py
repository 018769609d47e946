"""Every registered recipe as a torch.optim citizen: the generic checks of PyTorch's own optimizer tests
(test/test_optim.py, TestOptimRenewed, and common_optimizers.py's error inputs), run on every recipe with
``torch.optim.Adam`` as the control case. A recipe must pass every check the control passes."""
import copy
import io
import math
import pickle
import re
import warnings

import pytest
import torch
from torch.nn import Parameter
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import optimizers

CONTROL = "torch.optim.Adam"
RECIPES = optimizers.available()
ALL = [CONTROL] + RECIPES
MINI = {"adam_mini", "adam_mini_stable"}
#: Extra constructor arguments a recipe needs (Adam-mini partitions by hidden size and heads).
EXTRA = {name: dict(dim=4, n_heads=2) for name in MINI}
def cases(names):
    """``names`` as pytest params."""
    return list(names)


def make(name, params, **kwargs):
    """The optimizer under test: the control (torch.optim.Adam) or recipe ``name``."""
    if name == CONTROL:
        return torch.optim.Adam(params, **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="adam_mini got parameters without names")
        return optimizers.build(name, params, **{**EXTRA.get(name, {}), **kwargs})


def accepted(name, **hparams):
    """The hyper-parameters among ``hparams`` that recipe ``name`` accepts (none for the control)."""
    known = {} if name == CONTROL else optimizers.get_recipe(name).defaults
    return {k: v for k, v in hparams.items() if k in known}


def weight_bias(dtype=torch.float32, contiguous=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(10, 5, 2, generator=gen).to(dtype), torch.randn(10, 2, generator=gen).to(dtype)
    if contiguous:
        return Parameter(weight[..., 0].contiguous()), Parameter(bias[..., 0].contiguous())
    return Parameter(weight[..., 0]), Parameter(bias[..., 0])


INPUT = torch.randn(5, generator=torch.Generator().manual_seed(1))


def loss_of(weight, bias):
    return (weight.mv(INPUT.to(weight.dtype)) + bias).pow(2).sum()


def closure_for(opt, weight, bias):
    def closure():
        opt.zero_grad()
        loss = loss_of(weight, bias)
        loss.backward()
        return loss
    return closure


def spiky_grads(params, step):
    """Deterministic gradients with a spike every third step (exercises the clipping transforms)."""
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        g = torch.randn(p.shape, generator=gen)
        if step % 3 == 2:
            g.view(-1)[0] = 300.0
        p.grad = g.to(p.dtype)


def run(opt, params, steps, start=0):
    for step in range(start, start + steps):
        spiky_grads(params, step)
        opt.step()


def assert_equal_nested(a, b, path="state_dict"):
    """Exact equality of nested dicts/lists/tensors (tensors: same dtype and values)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_equal_nested(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_nested(x, y, f"{path}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (path, a, b)


def save_load(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --- the update goes the right way, contiguous or not, with LR schedulers --------------------------------

SCHEDULERS = {
    "none": lambda opt: [],
    "step": lambda opt: [torch.optim.lr_scheduler.StepLR(opt, gamma=0.9, step_size=5)],
    "cosine+plateau": lambda opt: [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20),
                                   torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)],
}


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("name", ALL)
def test_goes_right_direction(name, contiguous, scheduler):
    weight, bias = weight_bias(contiguous=contiguous)
    opt = make(name, [weight, bias], lr=1e-2)
    scheds = SCHEDULERS[scheduler](opt)
    closure = closure_for(opt, weight, bias)
    initial = closure().item()
    for _ in range(20):
        loss = opt.step(closure)
        for s in scheds:
            s.step(loss) if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau) else s.step()
    assert closure().item() < initial


@pytest.mark.parametrize("name", ALL)
def test_param_group_with_lr_scheduler_goes_right_direction(name):
    weight, bias = weight_bias()
    opt = make(name, [{"params": [weight]}, {"params": [bias], "lr": 1e-2}], lr=1e-2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
    closure = closure_for(opt, weight, bias)
    initial = closure().item()
    for _ in range(20):
        opt.step(closure)
        sched.step()
    assert closure().item() < initial
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-2 * 0.95 ** 20)


@pytest.mark.parametrize("name", ALL)
def test_scheduler_lr_is_the_lr_used(name):
    # LambdaLR scales the lr at construction: lr 0.02 * 0.5 must step exactly as lr 0.01
    results = []
    for lr, factor in ((0.02, 0.5), (0.01, 1.0)):
        params = list(weight_bias())
        opt = make(name, params, lr=lr)
        torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch, f=factor: f)
        run(opt, params, 6)
        results.append(params)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_param_groups_lr_irrelevant_group_stays(name):
    weight, bias = weight_bias()
    irrelevant = Parameter(torch.randn(2))
    start = irrelevant.detach().clone()
    opt = make(name, [{"params": [weight, bias], "lr": 1e-2}, {"params": [irrelevant], "lr": 1e-28}], lr=1e-2)
    closure = closure_for(opt, weight, bias)
    initial = closure().item()
    for _ in range(20):
        closure()
        irrelevant.grad = torch.rand_like(irrelevant)
        opt.step()
    assert loss_of(weight, bias).item() < initial
    assert torch.equal(irrelevant, start)


# --- item 8: never hand torch's fused CPU Adam a tensor it corrupts ----------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_non_contiguous_param_writes_only_itself(name):
    base = torch.randn(10, 5, 2, generator=torch.Generator().manual_seed(3))
    neighbour = base[..., 1].clone()
    p = Parameter(base[..., 0])
    opt = make(name, [p])
    for step in range(3):
        spiky_grads([p], step)
        opt.step()
    assert torch.equal(base[..., 1], neighbour)
    assert not torch.equal(base[..., 0], neighbour)


@pytest.mark.parametrize("name, control", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                           ("adam_clip", torch.optim.Adam)])
def test_non_contiguous_update_equals_torch_forloop(name, control):
    base = torch.randn(10, 5, 2, generator=torch.Generator().manual_seed(4))
    p = Parameter(base[..., 0])
    ref = Parameter(base[..., 0].clone())
    extra = dict(max_norm=1e6) if name == "adam_clip" else {}
    opt = optimizers.build(name, [p], **extra)
    ref_opt = control([ref], weight_decay=opt.param_groups[0]["weight_decay"], foreach=False)
    for step in range(4):
        spiky_grads([p], step)
        ref.grad = p.grad.clone()
        opt.step()
        ref_opt.step()
    torch.testing.assert_close(p.detach(), ref.detach(), rtol=1e-6, atol=1e-7)
    assert not opt.param_groups[0]["fused"]


@pytest.mark.parametrize("name", ALL)
def test_non_contiguous_matches_contiguous(name):
    contiguous, strided = list(weight_bias()), list(weight_bias(contiguous=False))
    with torch.no_grad():
        for c, s in zip(contiguous, strided):
            s.copy_(c)
    for params in (contiguous, strided):
        run(make(name, params, lr=1e-2), params, 5)
    for c, s in zip(contiguous, strided):
        torch.testing.assert_close(s.detach(), c.detach(), rtol=1e-5, atol=1e-6)


# --- state_dict: deterministic, resumable bit for bit, weights_only --------------------------------------

@pytest.mark.parametrize("named_to", [False, True])
@pytest.mark.parametrize("named_from", [False, True])
@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_resumes_bit_for_bit(name, named_from, named_to):
    def maybe_named(params, named):
        return [(f"p{i}", p) for i, p in enumerate(params)] if named else params

    params = list(weight_bias())
    opt = make(name, maybe_named(params, named_from), lr=1e-2)
    run(opt, params, 10)
    clones = [Parameter(p.detach().clone()) for p in params]
    opt_c = make(name, maybe_named(clones, named_to), lr=1e-2)
    saved = opt.state_dict()
    loaded = save_load(saved)
    assert_equal_nested(saved, loaded)
    opt_c.load_state_dict(loaded)
    for step in range(10, 20):
        run(opt, params, 1, step)
        run(opt_c, clones, 1, step)
        for a, b in zip(params, clones):
            assert torch.equal(a, b)

    def without_names(sd):
        sd = copy.deepcopy(sd)
        for g in sd["param_groups"]:
            g.pop("param_names", None)
        return sd
    assert_equal_nested(without_names(opt.state_dict()), without_names(opt_c.state_dict()))
    if (named_from or named_to) and name not in MINI:      # Adam-mini keeps names in its groups' "name"
        assert opt_c.state_dict()["param_groups"][0]["param_names"] == ["p0", "p1"]


@pytest.mark.parametrize("name", ALL)
def test_load_state_dict_with_python_number_steps(name):
    params = list(weight_bias())
    opt = make(name, params)
    run(opt, params, 3)
    sd = copy.deepcopy(opt.state_dict())
    for state in sd["state"].values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].item()
    opt.load_state_dict(sd)
    before = [p.detach().clone() for p in params]
    run(opt, params, 1, 3)
    assert all(not torch.equal(a, b) for a, b in zip(before, params))


@pytest.mark.parametrize("name", ALL)
def test_state_is_not_empty_after_a_step_and_repr_works(name):
    params = list(weight_bias())
    opt = make(name, params)
    run(opt, params, 1)
    assert opt.state and all(len(s) > 0 for s in opt.state.values())
    assert repr(opt)


# --- hooks: torch's machinery, each hook once per call ---------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_step_hooks_fire_once_each_in_torch_order(name):
    params = [Parameter(torch.tensor([1.0, 1.0]))]
    params[0].grad = torch.ones(2)
    opt, other = make(name, params), torch.optim.SGD([Parameter(torch.ones(2))])
    data = []
    handles = [register_optimizer_step_pre_hook(lambda *a: data.append(0)),
               register_optimizer_step_post_hook(lambda *a: data.append(5))]
    for o in (opt, other):
        handles += [o.register_step_pre_hook(lambda *a: data.append(1)),
                    o.register_step_post_hook(lambda *a: data.append(2))]
    try:
        opt.step()
        assert data == [0, 1, 2, 5]
        other.step()
        opt.step()
        assert data == [0, 1, 2, 5] * 3
    finally:
        for h in handles:
            h.remove()
    opt.step()
    assert data == [0, 1, 2, 5] * 3


@pytest.mark.parametrize("name", ALL)
def test_state_dict_hooks(name):
    opt = make(name, [Parameter(torch.rand(2, 3))])
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("test", 1))

    def post(o, sd):
        sd["ran_pre_hook"] = sd["state"].pop("test", None) == 1
        return sd
    assert opt.state_dict()["state"]["test"] == 1
    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert sd["ran_pre_hook"] and "test" not in sd["state"]


@pytest.mark.parametrize("name", ALL)
def test_load_state_dict_hooks_and_prepend(name):
    params = list(weight_bias())
    opt = make(name, params)
    run(opt, params, 2)
    state_dict = opt.state_dict()
    calls = []

    def pre1(o, sd):
        calls.append("pre1")
        sd["param_groups"][0]["lr"] = 0.002

    def pre2(o, sd):
        calls.append("pre2")
        sd = copy.deepcopy(sd)
        sd["param_groups"][0]["lr"] = 0.003
        return sd

    def post(o):
        calls.append(("post", o.param_groups[0]["lr"]))
    opt.register_load_state_dict_pre_hook(pre1)
    opt.register_load_state_dict_post_hook(post)
    opt.load_state_dict(state_dict)
    assert opt.param_groups[0]["lr"] == 0.002 and calls == ["pre1", ("post", 0.002)]
    opt.register_load_state_dict_pre_hook(pre2, prepend=True)
    opt.load_state_dict(state_dict)
    assert opt.param_groups[0]["lr"] == 0.002
    assert calls[2:] == ["pre2", "pre1", ("post", 0.002)]
    run(opt, params, 1, 2)


# --- dtypes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_dtypes(name, dtype):
    params = list(weight_bias(dtype))
    start = [p.detach().clone() for p in params]
    opt = make(name, params, lr=1e-2)
    run(opt, params, 4)
    for p, s in zip(params, start):
        assert p.dtype == dtype and torch.isfinite(p).all() and not torch.equal(p, s)
    fresh = make(name, params, lr=1e-2)
    fresh.load_state_dict(save_load(opt.state_dict()))
    run(fresh, params, 1, 4)


@pytest.mark.parametrize("name", ALL)
def test_float64_agrees_with_float32(name):
    results = []
    for dtype in (torch.float32, torch.float64):
        params = list(weight_bias(dtype))
        run(make(name, params, lr=1e-2), params, 5)
        results.append(params)
    for a, b in zip(*results):
        torch.testing.assert_close(a.detach().double(), b.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("order", ["fp32-bf16", "bf16-fp32"])
@pytest.mark.parametrize("name", cases(ALL))
def test_mixed_dtypes_in_one_group(name, order):
    dtypes = (torch.float32, torch.bfloat16) if order == "fp32-bf16" else (torch.bfloat16, torch.float32)
    gen = torch.Generator().manual_seed(5)
    values = [torch.randn(6, 4, generator=gen).to(d) for d in dtypes]
    one = [Parameter(v.clone()) for v in values]
    apart = [Parameter(v.clone()) for v in values]
    run(make(name, one, lr=1e-2), one, 4)
    run(make(name, [{"params": [apart[0]]}, {"params": [apart[1]]}], lr=1e-2), apart, 4)
    for a, b in zip(one, apart):
        assert a.dtype == b.dtype and torch.equal(a, b)


# --- copies ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", ALL)
def test_copy_steps_like_the_original(name, how):
    params = list(weight_bias())
    opt = make(name, params)
    run(opt, params, 3)
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    public = lambda o: {k for k in o.__dict__ if not k.startswith("_")}  # noqa: E731
    assert public(twin) == public(opt)
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    assert all(a is not b and torch.equal(a, b) for a, b in zip(params, twin_params))
    run(opt, params, 3, 3)
    run(twin, twin_params, 3, 3)
    for a, b in zip(params, twin_params):
        assert torch.equal(a, b)


# --- gradients: zero_grad, None, zeros, left as the caller set them --------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_zero_grad_both_ways(name):
    params = list(weight_bias())
    opt = make(name, params)
    run(opt, params, 1)
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(params, grads))
    opt.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("name", ALL)
def test_params_without_grad_are_skipped(name):
    with_grad, without = weight_bias()
    start = without.detach().clone()
    opt = make(name, [with_grad, without])
    for step in range(3):
        spiky_grads([with_grad], step)
        opt.step()
    assert torch.equal(without, start)
    assert not getattr(opt, "transform_state", {}).get(without)
    opt.step()          # no gradient anywhere: still fine
    requires_nothing = [torch.randn(2, 3) for _ in range(2)]
    if name in MINI:       # Adam-mini builds its partition from the trainable tensors: it needs one
        with pytest.raises(ValueError, match="no parameter requires grad"):
            make(name, requires_nothing)
        return
    make(name, requires_nothing).step(lambda: torch.tensor([1.0]))


@pytest.mark.parametrize("name", ALL)
def test_zero_grads_leave_params_alone(name):
    p = Parameter(torch.randn(5, 1))
    start = p.detach().clone()
    opt = make(name, [p], weight_decay=0.0)
    p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(p, start)


@pytest.mark.parametrize("name", cases(ALL))
def test_step_leaves_p_grad_as_the_caller_set_it(name):
    params = list(weight_bias())
    # resets, clipping (SPAM's from step 20 on, so no reset for it) and cosine decay all happen in 24 steps
    hp = accepted(name, reset_interval=0 if name == "spam" else 5, threshold=5.0, max_norm=0.5, total_T=12)
    opt = make(name, params, **hp)
    for step in range(24):
        spiky_grads(params, step)
        grads = [p.grad for p in params]
        values = [g.clone() for g in grads]
        opt.step()
        for p, g, v in zip(params, grads, values):
            assert p.grad is g and torch.equal(g, v), step


# --- add_param_group mid-training, then save and resume ---------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_add_param_group_mid_training_then_resume(name):
    # stable_spam_ref does not save its global step (SPEC §1.1 quirk d): resumable only without resets/cosine
    hp = {} if name == "stable_spam_ref" else accepted(name, total_T=10, reset_interval=4)

    def fresh():
        weight, bias = weight_bias()
        return weight, bias, Parameter(torch.randn(3, generator=torch.Generator().manual_seed(9)))

    def train(steps, cut=None):
        weight, bias, extra = fresh()
        opt = make(name, [weight], lr=1e-2, **hp)
        run(opt, [weight], 3)
        opt.add_param_group({"params": [bias, extra], "lr": 5e-3})
        params = [weight, bias, extra]
        run(opt, params, steps - 3, 3)
        return opt, params

    reference, ref_params = train(12)
    opt, params = train(7)
    saved = save_load(opt.state_dict())
    weight, bias, extra = fresh()
    with torch.no_grad():
        for p, value in zip((weight, bias, extra), params):
            p.copy_(value)
    resumed = make(name, [weight], lr=1e-2, **hp)
    resumed.add_param_group({"params": [bias, extra], "lr": 5e-3})
    resumed.load_state_dict(saved)
    run(resumed, [weight, bias, extra], 5, 7)
    for a, b in zip(ref_params, (weight, bias, extra)):
        assert torch.equal(a, b)


# --- validation: per group, and torch's error inputs --------------------------------------------------------

BAD_GROUP_VALUES = [("lr", -1.0), ("betas", (0.9, 2.0)), ("eps", -1e-8), ("weight_decay", -0.1),
                    ("no_such_key", 1)]


@pytest.mark.parametrize("key, value", BAD_GROUP_VALUES)
@pytest.mark.parametrize("name", RECIPES)     # torch.optim.Adam does not check groups: stricter than the control
def test_group_hyperparameters_checked_like_the_constructor(name, key, value):
    weight, bias = weight_bias()
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: param group 1: .*{key}") as constructor_error:
        make(name, [{"params": [weight]}, {"params": [bias], key: value}])
    assert "\n" not in str(constructor_error.value)
    opt = make(name, [weight])
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: param group 1: .*{key}"):
        opt.add_param_group({"params": [bias], key: value})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name", RECIPES)
def test_valid_group_values_are_used(name):
    weight, bias = weight_bias()
    opt = make(name, [{"params": [weight]}, {"params": [bias], "lr": 1e-28}])
    start = bias.detach().clone()
    run(opt, [weight, bias], 3)
    assert torch.equal(bias, start)


def error_inputs():
    """common_optimizers.get_error_inputs_for_all_optims (CPU): (params, kwargs, error type, message regex)."""
    p1, p2 = Parameter(torch.randn(1, 1)), Parameter(torch.randn(1, 1))
    return {
        "invalid param type": (p1, {}, TypeError,
                               "params argument given to the optimizer should be an iterable of Tensors or dicts"),
        "duplicate parameters": ([p1, p1], {}, UserWarning, ".*a parameter group with duplicate parameters.*"),
        "duplicates across groups": ([{"params": p1}, {"params": p1}], {}, ValueError,
                                     "some parameters appear in more than one parameter group"),
        "tensor lr not 1-element": (None, dict(lr=torch.tensor([0.001, 0.001])), ValueError,
                                    "Tensor lr must be 1-element"),
        "named and unnamed params": ([("weight", p1), p2], {}, ValueError,
                                     "all optimizer params should be with/without names. Some param names are "
                                     "missing"),
        "named and unnamed groups": ([{"params": [p1], "lr": 1e-2}, {"params": [("weight", p2)]}], {}, ValueError,
                                     "all optimizer param groups should be with/without names. cannot add param "
                                     "group with names to the optimizer"),
    }


@pytest.mark.parametrize("case", list(error_inputs()))
@pytest.mark.parametrize("name", ALL)
def test_torch_error_inputs(name, case):
    params, kwargs, error, regex = error_inputs()[case]
    params = [Parameter(torch.randn(1, 1))] if params is None else params
    if issubclass(error, Warning):
        with pytest.warns(error, match=regex):
            make(name, params, **kwargs)
    else:
        with pytest.raises(error, match=regex):
            make(name, params, **kwargs)


@pytest.mark.parametrize("name", ALL)
def test_tensor_lr_works_or_is_refused_as_torch_allows(name):
    results = []
    for lr in (1e-3, torch.tensor(1e-3)):
        params = list(weight_bias())
        try:
            opt = make(name, params, lr=lr)
        except ValueError as e:
            assert isinstance(lr, torch.Tensor) and "lr as a Tensor is not supported" in str(e)
            return
        run(opt, params, 3)
        results.append(params)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", RECIPES)    # torch.optim.Adam supports complex tensors; recipes refuse them
def test_complex_params_refused_clearly(name):
    z = Parameter(torch.randn(3, 2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex parameters are not supported"):
        make(name, [z])
    opt = make(name, [Parameter(torch.randn(2))])
    with pytest.raises(ValueError, match="param group 1: complex parameters are not supported"):
        opt.add_param_group({"params": [z]})


def test_closure_loss_is_returned_for_every_recipe():
    for name in ALL:
        weight, bias = weight_bias()
        opt = make(name, [weight, bias])
        loss = opt.step(closure_for(opt, weight, bias))
        assert torch.is_tensor(loss) and loss.item() == pytest.approx(loss_of(*weight_bias()).item(), rel=1e-6)


def test_every_registered_recipe_is_covered():
    assert RECIPES == optimizers.available() and len(RECIPES) == 17
