"""The deep memory's inner learning rate at initialisation (configs/experiment/lmm_depth{3,4}_*.yaml): at depth 4
the default theta_init 0.01 makes the inner gradient descent diverge over a 256-token sequence and the outer
gradient explode, which gradient clipping turns into no training at all (measured: a tiny LMM at depth 4 stayed at
the uniform loss for 300 steps); the experiment files' smaller value keeps it at the scale of a depth-2 memory."""

from __future__ import annotations

import importlib.util

import pytest
from omegaconf import OmegaConf

from train_helpers import ROOT

spec = importlib.util.spec_from_file_location("memory_grad_norm", ROOT / "scripts" / "memory_grad_norm.py")
grad_norm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grad_norm)

TINY = ["model=lmm", "size=tiny", "+model.net.match_params=false", "data.seq_len=256", "data.batch_size=4"]


def _experiment_theta(depth: int) -> float:
    return OmegaConf.load(ROOT / "configs" / "experiment" / f"lmm_depth{depth}_170m.yaml").model.net.memory.theta_init


@pytest.mark.slow
def test_depth4_outer_gradient_explodes_at_the_default_inner_lr_and_not_at_the_experiments():
    default = grad_norm.compose(TINY).model.net.memory.theta_init
    _, at_default, _ = grad_norm.outer_grad_norms([*TINY, "model.net.memory.depth=4"])
    _, at_experiment, _ = grad_norm.outer_grad_norms(
        [*TINY, "model.net.memory.depth=4", f"model.net.memory.theta_init={_experiment_theta(4)}"])
    _, at_depth2, _ = grad_norm.outer_grad_norms([*TINY, "model.net.memory.depth=2"])
    assert default == 0.01 and _experiment_theta(3) == _experiment_theta(4) < default
    assert at_default > 1e4 * at_depth2  # 1.6e7 against 2.4 on 2026-12-02
    assert at_experiment < 100 * at_depth2  # 42
