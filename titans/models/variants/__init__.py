"""The variants: one module per family, one registry that everything reads.

    attention.py   Transformer++ (block ``attn``) and SWA (block ``swa``): the attention baselines
    lmm.py         Titans LMM (block ``lmm``) and the linear-memory baselines DeltaNet, Gated DeltaNet, TTT
                   (the same block with another MemoryConfig preset)
    mac.py         Titans MAC (block ``mac``, eqs. 21-25)
    mag.py         Titans MAG (block ``mag``, eqs. 26-28)
    mal.py         Titans MAL (blocks ``lmm``, ``swa``, eqs. 29-31)

Each module defines its mixer(s), their state(s), its ``BlockType``(s) and its ``VariantSpec``(s) (base.py). The
registry below (``VARIANTS``, and ``BLOCK_TYPES`` from the variants' blocks) is what TitansConfig (defaults, memory
preset), the blocks (``build_mixer``), the reports, the model card and the result tables read. Adding a variant:
a module here, its spec in ``BUILTIN``, and ``configs/model/<name>.yaml`` (docs/architecture.md, "Adding things");
``register`` adds one from outside the package (a plugin, a test).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .attention import SWA, TRANSFORMER
from .base import ATTENTION, LINEAR_MEMORY, TITANS, BlockType, SeqContext, VariantSpec
from .lmm import DELTANET, GATED_DELTANET, LMM, TTT
from .mac import MAC, MACState
from .mag import MAG, MAGState
from .mal import MAL

if TYPE_CHECKING:
    from ..config import TitansConfig

#: the variants of the package, Titans first, then the baselines (the order of tests and tables)
BUILTIN = (MAC, MAG, MAL, LMM, TRANSFORMER, SWA, DELTANET, GATED_DELTANET, TTT)

#: variant name -> its spec
VARIANTS: dict[str, VariantSpec] = {}
#: block type (an entry of TitansConfig.block_types) -> its mixer; every block of every registered variant
BLOCK_TYPES: dict[str, BlockType] = {}
#: variant name -> the MemoryConfig preset of its memory (variants with memory blocks only)
MEMORY_PRESETS: dict[str, str] = {}


def register(spec: VariantSpec) -> VariantSpec:
    """Add a variant and its block types to the registry (a name is refused if it is taken by something else)."""
    if VARIANTS.get(spec.name, spec) is not spec:
        raise ValueError(f"a variant named {spec.name!r} is already registered")
    for block in spec.blocks:
        if BLOCK_TYPES.get(block.name, block) is not block:
            raise ValueError(f"a block type named {block.name!r} is already registered")
    VARIANTS[spec.name] = spec
    BLOCK_TYPES.update({block.name: block for block in spec.blocks})
    if spec.memory_preset is not None:
        MEMORY_PRESETS[spec.name] = spec.memory_preset
    return spec


def unregister(name: str) -> None:
    """Remove a variant, and its block types that no other variant uses."""
    spec = VARIANTS.pop(name)
    MEMORY_PRESETS.pop(name, None)
    in_use = {block.name for other in VARIANTS.values() for block in other.blocks}
    for block in spec.blocks:
        if block.name not in in_use:
            BLOCK_TYPES.pop(block.name, None)


for _spec in BUILTIN:
    register(_spec)

#: the paper's four Titans variants, and the attention baselines
TITANS_VARIANTS = tuple(spec.name for spec in BUILTIN if spec.family == TITANS)
ATTENTION_VARIANTS = tuple(spec.name for spec in BUILTIN if spec.family == ATTENTION)


def variant_spec(name: str) -> VariantSpec:
    """The registered spec of variant ``name`` (ValueError naming the choices if there is none)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {list(VARIANTS)}")
    return VARIANTS[name]


def display_name(variant: str) -> str:
    """The variant's name in the paper's tables and in our reports ("Titans (MAC)"); other names as they are."""
    spec = VARIANTS.get(variant)
    return spec.display_name if spec is not None else variant


def default_block_types(variant: str, n_layers: int) -> list[str]:
    """The layer pattern of ``variant`` over ``n_layers`` blocks (VariantSpec.block_types)."""
    return variant_spec(variant).block_types(n_layers)


def build_mixer(kind: str, cfg: TitansConfig) -> nn.Module:
    """The token mixer of a block of type ``kind`` (TitansConfig.block_types)."""
    if kind not in BLOCK_TYPES:
        raise ValueError(f"unknown block type {kind!r}; choose one of {list(BLOCK_TYPES)}")
    return BLOCK_TYPES[kind].mixer(cfg)


__all__ = [
    "VARIANTS", "BLOCK_TYPES", "MEMORY_PRESETS", "BUILTIN", "TITANS_VARIANTS", "ATTENTION_VARIANTS", "VariantSpec",
    "BlockType", "SeqContext", "MACState", "MAGState", "TITANS", "ATTENTION", "LINEAR_MEMORY", "register",
    "unregister", "variant_spec", "display_name", "default_block_types", "build_mixer",
]
