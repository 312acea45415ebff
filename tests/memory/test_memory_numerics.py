"""Long sequences at default initialisation stay finite in float32 and under bf16 autocast."""

import pytest
import torch

from titans.memory import MemoryConfig, NeuralMemory

LONG = 65536


pytestmark = pytest.mark.usefixtures("single_thread")


def _run_long(mem, x, autocast: bool):
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        y, state = mem(x[:, : LONG // 2])
        y2, state = mem(x[:, LONG // 2 :], state)
    return torch.cat([y, y2], 1).float(), state


@pytest.mark.parametrize("preset", ["titans", "gated_deltanet"])
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
def test_64k_tokens_stay_finite(preset, autocast):
    torch.manual_seed(0)
    mem = NeuralMemory(32, MemoryConfig.preset(preset, num_heads=2))
    x = torch.randn(1, LONG, 32)
    y, state = _run_long(mem, x, autocast)
    assert y.shape == (1, LONG, 32)
    assert torch.isfinite(y).all()
    for t in state.tensors():
        assert torch.isfinite(t).all()
        assert t.dtype in (torch.float32, torch.bfloat16)
    assert all(w.dtype == torch.float32 for w in state.weights)
    # the memory neither explodes nor collapses late in the sequence
    late = y[:, -1024:]
    assert late.abs().max() < 1e3
    assert late.std() > 1e-4


def test_long_backward_is_finite():
    torch.manual_seed(0)
    mem = NeuralMemory(32, MemoryConfig(num_heads=2))
    x = torch.randn(1, 4096, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = mem(x)
    y.float().pow(2).mean().backward()
    for name, p in mem.named_parameters():
        assert torch.isfinite(p.grad).all(), name
