"""Gradient norms by parameter group in training, and the one-line warning on a spike (titans/training/grad_monitor.py,
LitCausalLM.on_before_optimizer_step)."""

from __future__ import annotations

import logging

import pytest
import torch

from titans.models import build_causal_lm
from titans.models.param_groups import GROUPS, group_grad_norms, parameter_group, total_norm
from titans.training.grad_monitor import GradNormMonitor
from titans.training.lit_module import LitCausalLM

STEADY = {"attention": 0.6, "memory_gates": 0.01, "embeddings": 0.8}


def test_every_parameter_of_every_variant_has_a_named_group():
    for variant in ("mac", "mag", "mal", "lmm", "transformer"):
        groups = {parameter_group(n) for n, _ in build_causal_lm(variant, "tiny", vocab_size=64).named_parameters()}
        assert groups <= set(GROUPS)
        assert {"memory_gates", "memory_projections", "memory_state"} <= groups or variant == "transformer", groups
        assert {"embeddings", "mlps", "norms"} <= groups
        assert ("attention" in groups) == (variant != "lmm"), (variant, groups)


def test_the_total_from_the_groups_is_the_norm_that_clipping_sees():
    torch.manual_seed(0)
    model = build_causal_lm("mac", "tiny", vocab_size=64)
    ids = torch.randint(0, 64, (1, 48))
    model(input_ids=ids, labels=ids, return_logits=False).loss.backward()
    clipped = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"), norm_type=2.0)
    total = total_norm(group_grad_norms(model.named_parameters()))
    # float32 sums of about 1e6 squares against a float64 sum: relative error a few float32 epsilons
    assert total == pytest.approx(float(clipped), rel=1e3 * torch.finfo(torch.float32).eps)


def test_a_spike_names_the_group_that_grew_against_its_own_median():
    monitor = GradNormMonitor(window=20, spike_factor=100, min_history=10)
    for step in range(15):
        assert monitor.update(step, 1.0, STEADY) is None
    # the total goes up 50x (no spike) because the gates went up 3000x: max_ratio records it
    assert monitor.update(15, 50.0, {**STEADY, "memory_gates": 30.0}) is None
    assert monitor.max_ratio == pytest.approx(50.0)
    spike = monitor.update(16, 300.0, {**STEADY, "memory_gates": 299.0, "embeddings": 8.0})
    assert spike is not None and spike.group == "memory_gates"
    assert "memory_gates" in spike.message() and "300x" in spike.message()
    assert monitor.max_ratio == pytest.approx(300.0)


def test_no_spike_is_reported_before_the_median_has_history():
    monitor = GradNormMonitor(min_history=10)
    assert all(monitor.update(s, 10.0 ** s, STEADY) is None for s in range(10))
    assert monitor.max_ratio == 1.0


def test_the_monitor_state_survives_a_checkpoint():
    a = GradNormMonitor()
    for step in range(30):
        a.update(step, 1.0 + step % 3, STEADY)
    b = GradNormMonitor()
    b.load_state_dict(a.state_dict())
    assert b.update(30, 250.0, STEADY).median == a.update(30, 250.0, STEADY).median


def test_training_logs_each_group_and_warns_once_in_one_line_naming_it(caplog):
    torch.manual_seed(0)
    lit = LitCausalLM(net=build_causal_lm("mac", "tiny", vocab_size=64), optimizer={"lr": 1e-3},
                      scheduler={"warmup_steps": 0})
    logged: dict[str, float] = {}
    lit.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    ids = torch.randint(0, 64, (1, 32))

    def step(gate_scale: float) -> None:
        lit.net.zero_grad()
        lit.net(input_ids=ids, labels=ids).loss.backward()
        for name, p in lit.net.named_parameters():
            if p.grad is not None and parameter_group(name) == "memory_gates":
                p.grad.mul_(gate_scale)
        lit.on_before_optimizer_step(None)

    with caplog.at_level(logging.WARNING):
        for _ in range(12):
            step(1.0)
        assert not caplog.records
        groups = group_grad_norms(lit.net.named_parameters())
        assert {f"train/grad_norm/{g}" for g in groups} <= set(logged)
        assert logged["train/grad_norm"] == pytest.approx(sum(v * v for v in groups.values()) ** 0.5, rel=1e-6)
        step(1e7)
    (record,) = caplog.records
    assert "memory_gates" in record.getMessage() and "\n" not in record.getMessage()
    assert logged["train/grad_norm_max_ratio"] > 100
