"""What a variant module declares: the mixer call (``SeqContext``), its block types (``BlockType``) and the variant
itself (``VariantSpec``). The registry of them all is ``titans.models.variants``.

A token mixer is the part of a block that moves information between positions. Every mixer is called as
``mixer(x, ctx, state) -> (y, new_state)`` with ``x`` the normalised block input [B, T, d], ``ctx`` a
:class:`SeqContext` and ``state`` its typed state from the previous call of the same sequence (None on the first
call; see titans.models.cache). Training and generation share this one code path: without a generation cache the new
state is simply dropped. The first ``ctx.n_prefix`` rows of ``x`` are the persistent positions (first call of a
sequence only; TitansModel prepends them, paper eq. 19).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from titans.memory import NeuralMemory

if TYPE_CHECKING:
    from ..config import TitansConfig


@dataclass
class SeqContext:
    positions: torch.Tensor  # absolute positions of the rows of x (RoPE)
    n_prefix: int  # persistent rows at the start of x (0 after the first call)
    token_offset: int  # real tokens of this sequence processed before x


@dataclass(frozen=True)
class BlockType:
    """A token mixer a block can hold: one entry of ``TitansConfig.block_types``.

    name          the block type (``"mac"``); config.json lists these names
    mixer         the mixer's class, built as ``mixer(config)``
    state         the type of the state it carries from call to call (a value with ``map(fn)``; None if stateless)
    uses_memory   it holds a NeuralMemory (the config then gets ``memory``)
    uses_window   it reads ``TitansConfig.window`` (sliding-window attention)
    uses_segment  it reads ``TitansConfig.segment_len``
    """

    name: str
    mixer: Callable[[TitansConfig], nn.Module]
    state: type | None = None
    uses_memory: bool = False
    uses_window: bool = False
    uses_segment: bool = False


#: VariantSpec.family values
TITANS, ATTENTION, LINEAR_MEMORY = "titans", "attention", "linear memory"


@dataclass(frozen=True)
class VariantSpec:
    """One variant: ``TitansConfig(variant=name)`` and everything that reads the variant's name.

    name           the value of ``TitansConfig.variant`` (and of ``configs/model/<name>.yaml``'s ``net.variant``)
    display_name   its name in the paper's tables and in our reports and plots ("Titans (MAC)")
    description    one phrase for the model card ("Titans MAC (memory as a context)")
    blocks         the block pattern, repeated over the layers (MAL: lmm, swa, lmm, swa, ...)
    family         TITANS, ATTENTION (baselines) or LINEAR_MEMORY (baselines); see ``TITANS_VARIANTS``
    memory_preset  the ``MemoryConfig.preset`` its memory starts from (None: no memory blocks)
    n_persistent   the default number of persistent tokens (eq. 19)
    equations      the paper's equations its mixer implements
    forecasting_name  its name as the sequence mixer of the forecaster (Table 3), if it has one
    """

    name: str
    display_name: str
    description: str
    blocks: tuple[BlockType, ...]
    family: str
    memory_preset: str | None = None
    n_persistent: int = 0
    equations: str = ""
    forecasting_name: str | None = None

    def __post_init__(self):
        if not self.blocks:
            raise ValueError(f"variant {self.name!r} needs at least one block type")
        if self.uses_memory and self.memory_preset is None:
            raise ValueError(f"variant {self.name!r} has memory blocks: give it a memory_preset")

    @property
    def block_pattern(self) -> tuple[str, ...]:
        return tuple(block.name for block in self.blocks)

    def block_types(self, n_layers: int) -> list[str]:
        """The default ``TitansConfig.block_types``: the pattern repeated (an odd count ends with its first)."""
        return [self.blocks[i % len(self.blocks)].name for i in range(n_layers)]

    @property
    def uses_memory(self) -> bool:
        return any(block.uses_memory for block in self.blocks)

    @property
    def uses_window(self) -> bool:
        return any(block.uses_window for block in self.blocks)

    @property
    def uses_segment(self) -> bool:
        return any(block.uses_segment for block in self.blocks)


def build_memory(cfg: TitansConfig) -> NeuralMemory:
    """The neural long-term memory of a memory block (``cfg.memory``)."""
    return NeuralMemory(cfg.d_model, cfg.memory)
