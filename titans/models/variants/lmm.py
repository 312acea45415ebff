"""The neural long-term memory as the token mixer: Titans LMM, and the linear-memory baselines DeltaNet, Gated
DeltaNet and TTT, which are the same mixer with another ``MemoryConfig.preset`` (matrix memory, their update rules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from titans.memory import MemoryState

from .base import LINEAR_MEMORY, TITANS, BlockType, SeqContext, VariantSpec, build_memory

if TYPE_CHECKING:
    from ..config import TitansConfig


class MemoryMixer(nn.Module):
    """LMM as the token mixer: write x into M, read y = M*(q) (eqs. 8-18, chunked). State: the MemoryState."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.memory = build_memory(cfg)

    def forward(self, x, ctx: SeqContext, state: MemoryState | None) -> tuple[torch.Tensor, MemoryState]:
        return self.memory(x, state)


LMM_BLOCK = BlockType("lmm", MemoryMixer, state=MemoryState, uses_memory=True)

LMM = VariantSpec(
    name="lmm", display_name="Titans (LMM)", description="Titans LMM (the neural memory alone)",
    blocks=(LMM_BLOCK,), family=TITANS, memory_preset="titans", n_persistent=128,
    equations="eqs. 8-18 (the memory: write with surprise, momentum and forgetting; read), 19 (persistent memory)",
    forecasting_name="Neural Memory",
)
DELTANET = VariantSpec(
    name="deltanet", display_name="DeltaNet", description="DeltaNet (baseline)",
    blocks=(LMM_BLOCK,), family=LINEAR_MEMORY, memory_preset="deltanet",
    equations="the delta rule with a matrix memory (MemoryConfig.preset('deltanet'))",
)
GATED_DELTANET = VariantSpec(
    name="gated_deltanet", display_name="Gated DeltaNet", description="Gated DeltaNet (baseline)",
    blocks=(LMM_BLOCK,), family=LINEAR_MEMORY, memory_preset="gated_deltanet",
    equations="the gated delta rule with a matrix memory (MemoryConfig.preset('gated_deltanet'))",
)
TTT = VariantSpec(
    name="ttt", display_name="TTT", description="TTT (baseline)",
    blocks=(LMM_BLOCK,), family=LINEAR_MEMORY, memory_preset="ttt",
    equations="test-time training of a linear memory (MemoryConfig.preset('ttt'))",
)
