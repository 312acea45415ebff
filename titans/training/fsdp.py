"""FSDP policy for ``trainer=fsdp``: one FSDP unit (and one activation-checkpointing unit) per block."""

from __future__ import annotations

from torch.distributed.fsdp.wrap import ModuleWrapPolicy


def block_wrap_policy() -> ModuleWrapPolicy:
    from titans.models.block import Block

    return ModuleWrapPolicy({Block})
