"""TitansConfig: one Hugging Face config for every architecture of the project."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from transformers import PretrainedConfig

from titans.memory import MemoryConfig

# the variants are defined in the registry, titans.models.variants; these names of it stay importable from here
from .variants import (  # noqa: F401
    ATTENTION_VARIANTS,
    BLOCK_TYPES,
    MEMORY_PRESETS,
    TITANS_VARIANTS,
    VARIANTS,
    default_block_types,
    variant_spec,
)


class TitansConfig(PretrainedConfig):
    """Configuration of :class:`titans.models.TitansForCausalLM`.

    variant        mac | mag | mal | lmm (Titans), transformer (Transformer++) | swa (attention
                   baselines), deltanet | gated_deltanet | ttt (linear-memory baselines = the LMM
                   variant with ``MemoryConfig.preset(variant)``): a name of ``VARIANTS``
                   (titans.models.variants, where each one's defaults below are declared).
    d_model, n_layers, n_heads   width, number of blocks, attention heads.
    ffn_dim        SwiGLU hidden width; default ``ffn_mult * d_model`` rounded up to a multiple of
                   ``ffn_multiple_of``. ``build_causal_lm`` sets it so that every variant matches the
                   Transformer++ parameter count of its size.
    segment_len    MAC segment length (tokens; the paper's 512 is set by configs/recipe/table1_variant/mac.yaml).
                   window: sliding-window size (SWA, MAG, MAL).
    n_persistent   learned persistent tokens prepended to the input (paper eq. 19); default the
                   variant's (``VariantSpec.n_persistent``: 128 for the Titans variants, 0 for the baselines).
    memory         the memory of the memory blocks: a MemoryConfig (taken as it is), or a dict of MemoryConfig
                   fields that change the variant's preset (``VariantSpec.memory_preset``; this is how
                   config.json stores it).
                   ``num_heads`` None = ``n_heads``. None (and ignored) for variants without memory blocks.
    block_types    the token mixer of each block (``BLOCK_TYPES``: attn, swa, lmm, mag, mac); default the
                   variant's pattern (``VariantSpec.blocks``).
    tie_embeddings share the input embedding with the LM head.
    loss_chunk_size  tokens per block of the fused LM-head cross-entropy (``forward(..., return_logits=False)``).
    """

    model_type = "titans"

    def __init__(
        self,
        variant: str = "mac",
        vocab_size: int = 32000,
        d_model: int = 768,
        n_layers: int = 12,
        n_heads: int = 16,
        ffn_dim: int | None = None,
        ffn_mult: float = 8 / 3,
        ffn_multiple_of: int = 64,
        segment_len: int = 128,
        window: int = 2048,
        n_persistent: int | None = None,
        memory: MemoryConfig | dict[str, Any] | None = None,
        block_types: list[str] | None = None,
        tie_embeddings: bool = False,
        rope_theta: float = 10000.0,
        max_position_embeddings: int = 4096,
        norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        loss_chunk_size: int = 256,
        **kwargs,
    ):
        spec = variant_spec(variant)
        for name, value in dict(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                segment_len=segment_len, window=window, loss_chunk_size=loss_chunk_size).items():
            if int(value) < 1:
                raise ValueError(f"TitansConfig.{name} must be a positive integer, got {value}")
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} with an even head size (RoPE)")
        self.variant = variant
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_mult = ffn_mult
        self.ffn_multiple_of = ffn_multiple_of
        if ffn_dim is None:
            ffn_dim = ffn_multiple_of * math.ceil(ffn_mult * d_model / ffn_multiple_of)
        self.ffn_dim = int(ffn_dim)
        self.segment_len = segment_len
        self.window = window
        if n_persistent is None:
            n_persistent = spec.n_persistent
        if n_persistent < 0:
            raise ValueError(f"n_persistent must be >= 0, got {n_persistent}")
        self.n_persistent = n_persistent
        if block_types is None:
            block_types = spec.block_types(n_layers)
        block_types = list(block_types)
        if len(block_types) != n_layers or any(b not in BLOCK_TYPES for b in block_types):
            raise ValueError(f"block_types must list {n_layers} entries from {list(BLOCK_TYPES)}, got {block_types}")
        self.block_types = block_types
        self.memory = self._memory_config(variant, n_heads, memory) if self.uses_memory else None
        self.tie_embeddings = tie_embeddings
        self.rope_theta = rope_theta
        self.max_position_embeddings = max_position_embeddings
        self.norm_eps = norm_eps
        self.initializer_range = initializer_range
        self.loss_chunk_size = loss_chunk_size
        kwargs["tie_word_embeddings"] = tie_embeddings
        super().__init__(**kwargs)

    @staticmethod
    def _memory_config(variant: str, n_heads: int, memory: MemoryConfig | dict | None) -> MemoryConfig:
        if not isinstance(memory, MemoryConfig):
            fields = {"num_heads": n_heads, **(memory or {})}
            memory = MemoryConfig.preset(VARIANTS[variant].memory_preset or "titans", **fields)
        if memory.num_heads is None:
            memory = dataclasses.replace(memory, num_heads=n_heads)
        return memory

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (config.json, checkpoints): the memory as a dict of its fields."""
        out = super().to_dict()
        if isinstance(out.get("memory"), MemoryConfig):
            out["memory"] = out["memory"].to_dict()
        return out

    @property
    def uses_memory(self) -> bool:
        return any(BLOCK_TYPES[b].uses_memory for b in self.block_types)

    # names some Hugging Face utilities look for
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads
