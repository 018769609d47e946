"""The moe domain: configs, hyper-parameters, router losses and telemetry, and real smoke-size OLMoE training."""

import math

import pytest
import torch
import torch.nn.functional as F

import domains
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import default_hparams
from benchmarks.running.run_logger import BufferedRunLogger
from domains.base import ConfigError, RunContext
from domains.llama import LlamaConfig
from domains.lm.causal_lm import next_token_loss
from domains.lm.textdata import TextData
from domains.moe.domain import SIZES, active_parameters, build_model, moe_loss, text_data
from domains.moe.routing import RouterLoadMeter, expert_load, load_cv
from domains.training.accumulation import forward_backward


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The CPU is shared with other jobs; two OpenMP threads on two busy cores thrash.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def moe():
    return domains.get("moe")


@pytest.fixture(scope="module")
def smoke(moe):
    return moe.config("smoke")


@pytest.fixture(scope="module")
def batch(smoke):
    return text_data(smoke).train_batch(0, 4, seed=0)


def test_presets_build_and_bad_values_are_named(moe):
    for preset in ("smoke", "quick", "cpu", "paper"):
        moe.config(preset)
    paper = moe.config("paper")
    # hidden, expert intermediate, heads, layers, experts, top-k
    assert SIZES[paper.size] == (2048, 1024, 16, 16, 64, 8)
    assert (paper.compute, paper.quant, paper.steps, paper.eval_every, paper.dataset, paper.tokenizer) == \
        ("bf16", "none", 3000, 1000, "c4", "t5-base")
    for preset, evaluations in (("smoke", 3), ("quick", 3), ("cpu", 4)):
        config = moe.config(preset)
        assert config.steps == evaluations * config.eval_every and (config.compute, config.quant) == ("fp32", "none")
    assert moe.metric == "val_loss" and not moe.higher_is_better and moe.default_study == "moe"
    with pytest.raises(ConfigError, match="balance_loss"):
        moe.config("smoke", {"balance_loss": "global"})
    with pytest.raises(ConfigError, match="size"):
        moe.config("smoke", {"size": "8x7B"})
    with pytest.raises(ConfigError, match="router_z_loss_coef"):
        moe.config("smoke", {"router_z_loss_coef": "-1"})


def test_paper_size_is_olmoe_1b_7b(moe):
    config = moe.config("paper")
    with torch.device("meta"):  # shapes only
        model = build_model(config, vocab_size=50304, seed=0)  # OLMoE's own vocabulary
    assert 6.8e9 < sum(p.numel() for p in model.parameters()) < 7.0e9  # "7B" total
    assert 1.2e9 < active_parameters(model) < 1.4e9  # "1B" active


def test_hparams_paper_lr_and_llama_stability_settings(moe):
    paper, cpu = moe.config("paper"), moe.config("cpu")
    for recipe in ("adam", "stable_spam"):
        assert default_hparams(moe, recipe, paper)["lr"] == 1e-4
    assert default_hparams(moe, "adam", cpu) == {"lr": default_hparams(moe, "stable_spam", cpu)["lr"]}
    spam = default_hparams(moe, "stable_spam", paper)
    assert (spam["gamma1"], spam["gamma2"], spam["gamma3"], spam["total_T"]) == (0.85, 0.99999, 0.999, 3000)
    assert spam["reset_interval"] == 3000 / 20
    # the llama domain's settings for a 16-bit run of the same length, reset interval included
    llama = default_hparams(domains.get("llama"), "stable_spam", LlamaConfig(compute="bf16", steps=cpu.steps))
    ours = default_hparams(moe, "stable_spam", cpu)
    assert {k: v for k, v in ours.items() if k != "lr"} == {k: v for k, v in llama.items() if k != "lr"}
    mini = default_hparams(moe, "adam_mini", cpu)
    hidden, _, heads, *_ = SIZES[cpu.size]
    assert (mini["dim"], mini["n_heads"]) == (hidden, heads)


def test_studies_compare_adam_and_stable_spam(moe):
    studies = studies_for(moe)
    assert studies["moe"] == studies["main"]
    assert {p: s.seeds for p, s in studies["moe"].items()} == {"smoke": 1, "quick": 3, "cpu": 3, "paper": 3}
    assert all(s.recipes == ("adam", "stable_spam") for s in studies["moe"].values())


def test_text_pipeline_is_llamas(moe, smoke):
    llama = domains.get("llama").config("smoke")
    assert (llama.vocab_size, llama.seq_len, llama.eval_tokens) == (smoke.vocab_size, smoke.seq_len, smoke.eval_tokens)
    shared = TextData.load(llama.dataset, llama.vocab_size, llama.seq_len, llama.eval_tokens, llama.tokenizer)
    assert text_data(smoke) is shared  # the same cached object, tokenizer included


def test_expert_load_matches_a_hand_count():
    # 4 tokens, 3 experts, top-2: the two largest logits of each row are chosen
    logits = torch.tensor([[3.0, 2.0, 0.0], [3.0, 0.0, 2.0], [0.0, 3.0, 2.0], [3.0, 2.0, 1.0]])
    load = expert_load([logits, logits.flip(-1)], top_k=2)
    counts = torch.tensor([[3.0, 3.0, 2.0], [2.0, 3.0, 3.0]])  # expert 0 chosen by rows 0, 1, 3; ...
    assert torch.allclose(load, counts / 8)
    assert torch.allclose(load.sum(-1), torch.ones(2))
    assert torch.allclose(load_cv(load), (counts / 8).std(-1, unbiased=False) * 3)
    assert load_cv(torch.full((1, 4), 0.25)).item() == 0.0


def test_router_meter_counts_what_the_model_routes(smoke, batch):
    model = build_model(smoke, text_data(smoke).vocab_size, seed=0).eval()
    routers = [layer.mlp.gate for layer in model.model.layers]
    with torch.no_grad(), RouterLoadMeter(routers, top_k=SIZES[smoke.size][5]) as meter:
        output = model(input_ids=batch, output_router_logits=True)
    assert torch.allclose(meter.load(), expert_load(output.router_logits, SIZES[smoke.size][5]))
    assert torch.allclose(meter.load().sum(-1), torch.ones(len(routers)))


def _per_layer_balance(router_logits, top_k):
    """Switch/OLMoE balance loss of each layer from one-hot assignments, averaged over layers."""
    losses = []
    for logits in router_logits:
        probs = logits.softmax(-1)
        chosen = F.one_hot(probs.topk(top_k, -1).indices, logits.shape[-1]).sum((0, 1)).float()
        losses.append(logits.shape[-1] * (chosen / chosen.sum() * probs.mean(0)).sum())
    return sum(losses) / len(losses)


def _pooled_balance(router_logits, top_k):
    """transformers' formula: assignment rate and mean probability pooled over all layers' tokens."""
    everything = torch.cat(list(router_logits))
    probs = everything.softmax(-1)
    rate = F.one_hot(probs.topk(top_k, -1).indices, everything.shape[-1]).sum(1).float().mean(0)
    return everything.shape[-1] * (rate * probs.mean(0)).sum()


@pytest.mark.parametrize("balance, reference", [("per_layer", _per_layer_balance), ("transformers", _pooled_balance)])
def test_training_loss_is_lm_plus_weighted_router_losses(moe, batch, balance, reference):
    config = moe.config("smoke", {"balance_loss": balance, "router_aux_loss_coef": 0.5, "router_z_loss_coef": 0.1})
    model = build_model(config, text_data(config).vocab_size, seed=0)
    loss, extras = moe_loss(model, batch, config)
    with torch.no_grad():
        logits = model(input_ids=batch, output_router_logits=True).router_logits
        lm = next_token_loss(model, batch)  # the llama domain's LM loss
    aux = reference(logits, SIZES[config.size][5])
    z = sum(torch.logsumexp(x, -1).pow(2).mean() for x in logits) / len(logits)
    assert loss.item() == pytest.approx((lm + 0.5 * aux + 0.1 * z).item(), rel=1e-5)
    assert (extras["lm_loss"].item(), extras["aux_loss"].item()) == pytest.approx((lm.item(), aux.item()), rel=1e-5)

    # with the LM part taken out, the router still gets a gradient (through the router losses) and lm_head none
    (loss - next_token_loss(model, batch)).backward()
    assert model.model.layers[0].mlp.gate.weight.grad.abs().sum() > 0
    assert model.lm_head.weight.grad.abs().max() < 1e-6


def test_micro_batches_give_the_mean_loss_telemetry_and_gradient_of_their_parts(moe, batch):
    """micro_batch_size 2 on 4 rows: the value, the extras and the accumulated gradient are the mean of the
    two halves' (the load-balancing loss is per micro-batch, as in gradient-accumulated OLMoE training)."""
    config = moe.config("smoke", {"micro_batch_size": 2, "router_aux_loss_coef": 0.5, "router_z_loss_coef": 0.1})
    model = build_model(config, text_data(config).vocab_size, seed=0)
    halves = [moe_loss(model, rows, config) for rows in batch.split(2)]
    expected = sum(loss for loss, _ in halves) / 2
    expected.backward()
    gradients = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # the trainer's gradient accumulation over the domain's (pure) loss
    loss, extras = forward_backward(model, lambda m, rows: moe_loss(m, rows, config), batch, config.micro_batch_size)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for key in ("lm_loss", "aux_loss", "z_loss", "load_cv_mean"):
        assert extras[key].item() == pytest.approx((halves[0][1][key] + halves[1][1][key]).item() / 2, rel=1e-6), key
    for param, gradient in zip(model.parameters(), gradients):
        torch.testing.assert_close(param.grad, gradient, rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="micro_batch_size"):
        moe.config("smoke", {"micro_batch_size": -1})


def test_bf16_autocast_gives_a_finite_loss(moe, batch):
    config = moe.config("smoke", {"compute": "bf16"})
    model = build_model(config, text_data(config).vocab_size, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, extras = moe_loss(model, batch[:2], config)
    loss.backward()
    assert math.isfinite(loss.item()) and all(math.isfinite(float(v)) for v in extras.values())


@pytest.mark.parametrize("recipe", ["adam", "stable_spam"])
def test_smoke_run_logs_val_loss_and_expert_load(moe, smoke, recipe):
    logger = BufferedRunLogger()  # the engine's logger
    ctx = RunContext(recipe=recipe, hparams=default_hparams(moe, recipe, smoke), seed=0, logger=logger)
    result = moe.run(smoke, ctx)
    assert math.isfinite(result["val_loss"]) and result["val_ppl"] == pytest.approx(math.exp(result["val_loss"]))
    curves = logger.curves()
    assert list(curves["eval", "val_loss"].steps) == [10, 20, 30]  # thirds of the run, like 1k/2k/3k
    _, _, _, layers, experts, _ = SIZES[smoke.size]
    load = torch.tensor([[curves["eval", f"expert_load/L{layer}/E{e}"].values[-1] for e in range(experts)]
                         for layer in range(layers)])
    assert torch.allclose(load.sum(-1), torch.ones(layers, dtype=load.dtype))
    assert result["load_cv_max"] == pytest.approx(load_cv(load).max().item(), rel=1e-5)
    for series in ("loss", "lm_loss", "aux_loss", "z_loss", "load_cv_mean", "load_cv_max"):
        values = curves["train", series].values
        assert len(values) == smoke.steps and all(map(math.isfinite, values)), series
    assert logger.info["experts"] == experts and logger.info["active_parameters"] < logger.info["parameters"]
