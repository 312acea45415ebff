"""Attention variants: Transformer++ (full causal attention) and SWA (sliding-window attention), the paper's
attention baselines. MAL reuses the ``swa`` block and MAG the attention layer."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from titans.layers import Attention, KVCache

from .base import ATTENTION, BlockType, SeqContext, VariantSpec

if TYPE_CHECKING:
    from ..config import TitansConfig


class AttentionMixer(nn.Module):
    """Full causal (``attn``, Transformer++) or sliding-window attention with the persistent prefix always visible
    (``swa``). State: the KVCache (all tokens, or the window plus the prefix)."""

    def __init__(self, cfg: TitansConfig, window: int | None):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window)

    def forward(self, x, ctx: SeqContext, state: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        return self.attn(x, ctx.positions, ctx.n_prefix, state)


class FullAttentionMixer(AttentionMixer):
    def __init__(self, cfg: TitansConfig):
        super().__init__(cfg, window=None)


class SlidingWindowMixer(AttentionMixer):
    def __init__(self, cfg: TitansConfig):
        super().__init__(cfg, window=cfg.window)


ATTN_BLOCK = BlockType("attn", FullAttentionMixer, state=KVCache)
SWA_BLOCK = BlockType("swa", SlidingWindowMixer, state=KVCache, uses_window=True)

TRANSFORMER = VariantSpec(
    name="transformer", display_name="Transformer++", description="Transformer++ (baseline)",
    blocks=(ATTN_BLOCK,), family=ATTENTION, equations="Llama-style attention baseline (Table 1)",
)
SWA = VariantSpec(
    name="swa", display_name="SWA", description="sliding-window attention (baseline)",
    blocks=(SWA_BLOCK,), family=ATTENTION, equations="sliding-window attention SWA* (Figure 3b)",
)
