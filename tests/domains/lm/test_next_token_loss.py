"""The fast next-token cross-entropy against the paths it replaced: the same loss and gradient, bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from domains.lm.causal_lm import next_token_cross_entropy


def _logits_and_ids(dtype=torch.float32, batch=3, length=9, vocab=37, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, length, vocab, generator=generator) * 4).to(dtype)
    return logits, torch.randint(0, vocab, (batch, length), generator=generator)


def _loss_and_grad(loss_fn, logits, ids, upstream=1.0):
    leaf = logits.clone().requires_grad_()
    loss = loss_fn(leaf, ids)
    (loss * upstream).backward()
    return loss.detach(), leaf.grad


def _sliced(reduction):  # the llama domain's former loss
    return lambda logits, ids: F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                               ids[:, 1:].reshape(-1), reduction=reduction)


def _masked(logits, ids):  # transformers' causal-LM loss (labels=ids), which the moe domain used
    labels = F.pad(ids, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("upstream", [1.0, 0.25])
def test_equals_the_sliced_cross_entropy_bit_for_bit(reduction, upstream):
    logits, ids = _logits_and_ids(batch=16, length=128, vocab=512)
    ref_loss, ref_grad = _loss_and_grad(_sliced(reduction), logits, ids, upstream)
    loss, grad = _loss_and_grad(lambda x, y: next_token_cross_entropy(x, y, reduction), logits, ids, upstream)
    assert torch.equal(loss, ref_loss)
    assert torch.equal(grad, ref_grad)
    assert torch.equal(grad[:, -1], torch.zeros_like(grad[:, -1]))  # the last position predicts nothing


def test_equals_transformers_causal_lm_loss_with_ignore_last():
    logits, ids = _logits_and_ids(batch=8, length=64, vocab=300, seed=1)
    ref_loss, ref_grad = _loss_and_grad(_masked, logits, ids)
    loss, grad = _loss_and_grad(lambda x, y: next_token_cross_entropy(x, y, ignore_last=True), logits, ids)
    assert torch.equal(loss, ref_loss)
    assert torch.equal(grad, ref_grad)


def test_bf16_logits_are_upcast_and_get_a_bf16_gradient():
    logits, ids = _logits_and_ids(torch.bfloat16)
    ref_loss, ref_grad = _loss_and_grad(_sliced("mean"), logits, ids)
    loss, grad = _loss_and_grad(next_token_cross_entropy, logits, ids)
    assert loss.dtype == torch.float32 and grad.dtype == torch.bfloat16
    assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)


def test_value_matches_a_hand_computed_cross_entropy():
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]]])  # the last row predicts nothing
    ids = torch.tensor([[0, 1, 0]])
    # -log softmax([0, 0])[1] = log 2; -log softmax([2, 0])[0] = log(1 + e^-2)
    expected = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(-2.0)))) / 2
    assert torch.allclose(next_token_cross_entropy(logits, ids), expected)
    with pytest.raises(ValueError, match="reduction"):
        next_token_cross_entropy(logits, ids, reduction="none")
