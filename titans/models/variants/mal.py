"""Titans MAL, memory as a layer (paper section 4.3, eqs. 29-31): a memory block, then a sliding-window attention
block, repeated (Samba-like; an odd number of layers ends with a memory block). It has no mixer of its own: its
blocks are the ``lmm`` and ``swa`` block types."""
from __future__ import annotations

from .attention import SWA_BLOCK
from .base import TITANS, VariantSpec
from .lmm import LMM_BLOCK

MAL = VariantSpec(
    name="mal", display_name="Titans (MAL)", description="Titans MAL (memory as a layer)",
    blocks=(LMM_BLOCK, SWA_BLOCK), family=TITANS, memory_preset="titans", n_persistent=128,
    equations="eqs. 29-31 (y = M(x), o = SWA(y)), 19 (persistent memory)",
)
