"""Titans MAG, memory as a gate (paper section 4.2, eqs. 26-28): sliding-window attention and the memory read the
same input side by side, and the memory's output gates the attention's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from titans.layers import Attention, KVCache, RMSNorm
from titans.memory import MemoryState

from .base import TITANS, BlockType, SeqContext, VariantSpec, build_memory

if TYPE_CHECKING:
    from ..config import TitansConfig


@dataclass(frozen=True)
class MAGState:
    """Memory as a gate: the sliding-window attention's cache and the memory's state."""

    kv: KVCache
    memory: MemoryState

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "MAGState":
        return MAGState(kv=self.kv.map(fn), memory=self.memory.map(fn))


class MAGMixer(nn.Module):
    """Memory as a gate (Titans eqs. 26-28): o = W_o (RMSNorm_a(SWA*(x)) * sigmoid(RMSNorm_b(M(x))))."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, cfg.window)
        self.memory = build_memory(cfg)
        self.norm_attn = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.norm_memory = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, x, ctx: SeqContext, state: MAGState | None) -> tuple[torch.Tensor, MAGState]:
        y_attn, kv = self.attn.core(x, ctx.positions, ctx.n_prefix, None if state is None else state.kv)  # eq. 27
        y_mem, memory = self.memory(x, None if state is None else state.memory)  # M(x), written and read (eq. 28)
        out = self.attn.wo(self.norm_attn(y_attn) * torch.sigmoid(self.norm_memory(y_mem)))  # eq. 28: y ⊗ M(x)
        return out, MAGState(kv=kv, memory=memory)


MAG_BLOCK = BlockType("mag", MAGMixer, state=MAGState, uses_memory=True, uses_window=True)

MAG = VariantSpec(
    name="mag", display_name="Titans (MAG)", description="Titans MAG (memory as a gate)",
    blocks=(MAG_BLOCK,), family=TITANS, memory_preset="titans", n_persistent=128,
    equations="eqs. 26-28 (x = [P | x], y = SWA*(x), o = y ⊗ M(x)), 19 (persistent memory)",
)
