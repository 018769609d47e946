"""The public API: recipe names, building from every kind of ``params``, validation errors, learning."""
import pytest
import torch

import optimizers

EXPECTED = ["adam", "adamw", "adam_clip", "adafactor", "lion", "adam_mini", "spam", "stable_spam",
            "stable_spam_ref", "lion_stable", "adam_mini_stable", "adam+moret", "adam+moret+adaclip",
            "adam+moret+adagn", "adam+moret+adagn+adaclip", "adam+moret+adagn+spikeclip",
            "adam+moret+gradclip+adaclip"]


class TinyTransformerBits(torch.nn.Module):
    """Names Adam-mini partitions: q_proj/k_proj (per head), v_proj and mlp (per neuron), bias (Adam)."""

    def __init__(self, dim=8):
        super().__init__()
        self.q_proj = torch.nn.Linear(dim, dim)
        self.k_proj = torch.nn.Linear(dim, dim)
        self.v_proj = torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Linear(dim, 1)

    def forward(self, x):
        return self.mlp(self.v_proj(x) + self.q_proj(x) * torch.sigmoid(self.k_proj(x)))


def test_available_is_exactly_the_spec_list():
    assert optimizers.available() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_every_recipe_lowers_a_least_squares_loss(name):
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    y = x @ torch.randn(8, 1) + 0.3
    model = TinyTransformerBits() if "mini" in name else torch.nn.Linear(8, 1)
    extra = dict(dim=8, n_heads=2) if "mini" in name else {}
    lr = 2e-2 if "lion" in name else 3e-2
    opt = optimizers.build(name, model.named_parameters(), lr=lr, **extra)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.collect_stats is False and opt.last_stats is None
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], (name, losses[0], losses[-1])
    assert opt.last_stats is None


def test_params_forms_and_groups():
    model = torch.nn.Linear(3, 2)
    forms = (model.parameters, model.named_parameters,
             lambda: [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}])
    for params in forms:
        for name in ("stable_spam", "adam_clip", "spam"):
            opt = optimizers.build(name, params())
            assert sum(len(g["params"]) for g in opt.param_groups) == 2
            assert all(isinstance(p, torch.Tensor) for g in opt.param_groups for p in g["params"])
    named_groups = [{"params": list(model.named_parameters()), "lr": 0.1}]
    assert optimizers.build("adam", named_groups).param_groups[0]["lr"] == 0.1


def test_adam_mini_gets_names_or_warns():
    model = TinyTransformerBits()
    opt = optimizers.build("adam_mini", model.named_parameters(), dim=8, n_heads=2)
    assert {g["name"] for g in opt.param_groups} >= {"q_proj.weight", "mlp.bias"}
    with pytest.warns(UserWarning, match="without names"):
        optimizers.build("adam_mini", model.parameters(), dim=8, n_heads=2)


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown optimizer recipe 'adamx'.*stable_spam"):
        optimizers.build("adamx", torch.nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="available"):
        optimizers.recipe_class("sgd")


@pytest.mark.parametrize("name, hp, needle", [
    ("stable_spam", dict(lr=-1.0), "lr"),
    ("stable_spam", dict(betas=(1.0, 0.999)), r"betas.*\[0, 1\)"),
    ("stable_spam", dict(betas=(0.9, -0.1)), "betas"),
    ("stable_spam", dict(gamma1=1.0), r"gamma1.*\(0, 1\)"),
    ("stable_spam", dict(gamma2=0.0), "gamma2"),
    ("stable_spam", dict(gamma3=1.5), "gamma3"),
    ("stable_spam", dict(reset_interval=-1), "reset_interval"),
    ("stable_spam", dict(reset_interval=2.5), "reset_interval"),
    ("stable_spam", dict(eps=-1e-8), "eps"),
    ("stable_spam", dict(total_T=0), "total_T"),
    ("stable_spam", dict(eta_min=2.0), "eta_min"),
    ("stable_spam", dict(lr=float("nan")), "lr"),
    ("spam", dict(threshold=-1.0), "threshold"),
    ("spam", dict(warmup=-5), "warmup"),
    ("adam_clip", dict(max_norm=0.0), "max_norm"),
    ("lion", dict(lr=0.0), "lr"),
    ("adafactor", dict(eps=1e-3), "eps"),
    ("adam_mini", dict(n_heads=0), "n_heads"),
    ("adamw", dict(weight_decay=-0.1), "weight_decay"),
])
def test_invalid_values_name_the_parameter_and_range(name, hp, needle):
    with pytest.raises(ValueError, match=needle) as err:
        optimizers.build(name, torch.nn.Linear(2, 2).parameters(), **hp)
    assert "must be" in str(err.value)


def test_unknown_hyperparameter_lists_accepted_names():
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) momentum.*accepted:.*gamma1.*reset_interval"):
        optimizers.build("stable_spam", torch.nn.Linear(2, 2).parameters(), momentum=0.9)
    with pytest.raises(ValueError, match="threshold"):
        optimizers.build("adam", torch.nn.Linear(2, 2).parameters(), threshold=3.0)
    with pytest.raises(ValueError, match="gamma1"):
        optimizers.StableSPAM(torch.nn.Linear(2, 2).parameters(), gamma1=-0.5)


def test_recipe_class_for_apis_that_take_a_class():
    cls = optimizers.recipe_class("stable_spam", gamma1=0.85, gamma2=0.99999)
    assert issubclass(cls, torch.optim.Optimizer) and issubclass(cls, optimizers.StableSPAM)
    opt = cls(torch.nn.Linear(2, 2).parameters(), lr=3e-4, reset_interval=250)
    group = opt.param_groups[0]
    assert (group["lr"], group["gamma1"], group["gamma2"], group["reset_interval"]) == (3e-4, 0.85, 0.99999, 250)
    assert optimizers.recipe_class("spam") is optimizers.recipe_class("spam")
    assert isinstance(optimizers.build("spam", torch.nn.Linear(2, 2).parameters()), optimizers.SPAM)
    with pytest.raises(ValueError, match="gamma1"):
        optimizers.recipe_class("stable_spam", gamma1=2.0)


def test_classes_are_importable_and_plain():
    p = torch.nn.Parameter(torch.ones(3))
    for cls in (optimizers.StableSPAM, optimizers.SPAM, optimizers.StableSPAMRef):
        opt = cls([p], lr=0.1)
        p.grad = torch.ones(3)
        opt.step()
        opt.zero_grad()
        assert p.grad is None
