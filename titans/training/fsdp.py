"""FSDP policy for ``trainer=fsdp``: one FSDP unit (and one activation-checkpointing unit) per block."""

from __future__ import annotations

from torch import nn
from torch.distributed.fsdp.wrap import ModuleWrapPolicy


def block_classes() -> set[type[nn.Module]]:
    from titans.models import blocks

    return {cls for cls in vars(blocks).values() if isinstance(cls, type) and issubclass(cls, nn.Module)
            and cls.__name__.endswith("Block")}


def block_wrap_policy() -> ModuleWrapPolicy:
    return ModuleWrapPolicy(block_classes())
