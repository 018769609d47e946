"""The moe domain's language-model loss is transformers' own (``labels=ids``), bit for bit, on a real OLMoE."""

import torch

import domains
from domains.moe.domain import build_model, moe_loss


def test_moe_loss_equals_transformers_causal_lm_loss_and_gradients():
    config = domains.get("moe").config("smoke", {"router_aux_loss_coef": 0.0, "router_z_loss_coef": 0.0})
    ids = torch.randint(0, 500, (4, 32), generator=torch.Generator().manual_seed(3))
    reference, ours = build_model(config, 500, seed=0), build_model(config, 500, seed=0)

    expected = reference(input_ids=ids, labels=ids, output_router_logits=True).loss
    expected.backward()
    loss, extras = moe_loss(ours, ids, config)
    loss.backward()

    assert torch.equal(extras["lm_loss"], expected.detach()) and torch.equal(loss.detach(), expected.detach())
    for (name, mine), (_, theirs) in zip(ours.named_parameters(), reference.named_parameters()):
        assert torch.equal(mine.grad, theirs.grad), name
