"""The optimizers inside real training stacks: stable-baselines3 (optimizer_class) and the transformers Trainer."""
import math

import pytest
import torch

import optimizers


def test_sb3_ppo_uses_the_recipe_class():
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu",
                    policy_kwargs=dict(optimizer_class=optimizers.recipe_class("stable_spam"),
                                       optimizer_kwargs=dict(reset_interval=5, gamma1=0.85)))
    opt = model.policy.optimizer
    assert isinstance(opt, optimizers.StableSPAM)
    assert opt.param_groups[0]["gamma1"] == 0.85
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=128)
    assert opt.state_dict()["counters"]["step"] == 2 * 2 * (64 // 32)     # rollouts x epochs x minibatches
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_transformers_trainer_with_a_tiny_gpt2(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_positions=16, n_embd=32, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 100, (16, 16))]
    opt = optimizers.build("stable_spam", model.named_parameters(), lr=1e-3, reset_interval=3)
    opt.collect_stats = True
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4,
                                          logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                                          disable_tqdm=True)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, None))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert opt.state_dict()["counters"]["step"] == 4
    assert opt.last_stats["reset"].item() == 0.0 and math.isfinite(opt.last_stats["grad_norm_after"].item())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
