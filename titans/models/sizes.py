"""Model sizes and ``build_causal_lm``.

Shapes (blocks x width x heads) are the paper's (NeurIPS Table 5); 400M has no published shape,
we use 26 x 1024 x 16 (it lands at ~0.39B with the 32K vocabulary). ``ffn_mult`` is the SwiGLU width
of the Transformer++ reference at that size (chosen so that it lands on the size's name with an
untied 32K vocabulary).

Parameter matching: for a given size every variant has the parameter count of the Transformer++
reference of that size. The token mixers differ (an LMM or a MAG/MAC block holds more weights
than attention), so ``build_causal_lm`` gives each variant the SwiGLU width ``ffn_dim`` that
absorbs the difference: ffn_dim = (params(Transformer++) - params(variant without MLPs)) /
(3 * d_model * n_layers), rounded to a multiple of 8. Pass ``ffn_dim=...`` or
``match_params=False`` to opt out.
"""
from __future__ import annotations

import functools
import re

import torch

from .config import TitansConfig
from .modeling import TitansForCausalLM
from .variants import variant_spec

SIZES: dict[str, dict] = {
    "tiny": dict(n_layers=4, d_model=128, n_heads=4, ffn_mult=8 / 3),
    "small": dict(n_layers=8, d_model=256, n_heads=8, ffn_mult=8 / 3),
    "170m": dict(n_layers=12, d_model=768, n_heads=16, ffn_mult=4),
    "340m": dict(n_layers=24, d_model=1024, n_heads=16, ffn_mult=8 / 3),
    "400m": dict(n_layers=26, d_model=1024, n_heads=16, ffn_mult=8 / 3),
    "760m": dict(n_layers=24, d_model=1536, n_heads=16, ffn_mult=8 / 3),
    "1.3b": dict(n_layers=18, d_model=2048, n_heads=8, ffn_mult=4),
}

#: the sizes whose attention window and persistent-token count are not the paper's (TitansConfig.window 2048 and
#: VariantSpec.n_persistent, 128 for the Titans variants, NeurIPS App. E.1): the CPU-scale models attend over 128
#: tokens and prepend at most 16 persistent tokens (a variant that declares fewer keeps its own number).
SCALED_DEFAULTS: dict[str, dict] = {
    "tiny": dict(window=128, n_persistent=16),
    "small": dict(window=128, n_persistent=16),
}


def size_defaults(variant: str, size: str) -> dict:
    """The TitansConfig fields ``size`` gives ``variant``: its shape (SIZES) and, for the variants that use them,
    the scaled window and persistent-token count (SCALED_DEFAULTS)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {list(SIZES)}")
    spec = variant_spec(variant)
    scaled = dict(SCALED_DEFAULTS.get(size, {}))
    if not any(block.uses_window for block in spec.blocks):
        scaled.pop("window", None)
    if "n_persistent" in scaled:
        scaled["n_persistent"] = min(scaled["n_persistent"], spec.n_persistent)
    return {**SIZES[size], **scaled}


def nominal_params(size: str) -> float | None:
    """The parameter count a paper size is named after ("170m" -> 1.7e8, "1.3b" -> 1.3e9); None for tiny, small."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mb])", size)
    return None if match is None else float(match[1]) * (1e6 if match[2] == "m" else 1e9)


#: the nominal parameter count of each paper size (read from its name)
NOMINAL_PARAMS = {size: nominal_params(size) for size in SIZES if nominal_params(size) is not None}


def count_params(config: TitansConfig) -> int:
    """Number of parameters (tied weights counted once); the model is built on the meta device."""
    with torch.device("meta"):
        model = TitansForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def _mlp_params(config: TitansConfig) -> int:
    return 3 * config.d_model * config.ffn_dim * config.n_layers


def _reference_ffn(config: TitansConfig) -> int:
    """The Transformer++ SwiGLU width for this shape (ffn_mult rule)."""
    return TitansConfig(variant="transformer", d_model=config.d_model, n_heads=config.n_heads,
                        n_layers=1, ffn_mult=config.ffn_mult, ffn_multiple_of=config.ffn_multiple_of).ffn_dim


@functools.lru_cache(maxsize=None)
def _transformer_params(vocab_size, d_model, n_layers, n_heads, ffn_dim, tie_embeddings) -> int:
    return count_params(TitansConfig(variant="transformer", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                                     n_heads=n_heads, ffn_dim=ffn_dim, tie_embeddings=tie_embeddings))


def matched_ffn_dim(config: TitansConfig, multiple_of: int = 8) -> int:
    """SwiGLU width that gives ``config`` the parameter count of the Transformer++ of the same shape."""
    target = _transformer_params(config.vocab_size, config.d_model, config.n_layers, config.n_heads,
                                 config.ffn_dim if config.variant == "transformer" else _reference_ffn(config),
                                 config.tie_embeddings)
    others = count_params(config) - _mlp_params(config)
    ffn = (target - others) / (3 * config.d_model * config.n_layers)
    ffn = int(round(ffn / multiple_of)) * multiple_of
    if ffn < multiple_of:
        raise ValueError(f"cannot match {config.variant} to the Transformer++ parameter count: its mixers alone "
                         f"exceed it; pass ffn_dim explicitly or match_params=False")
    return ffn


def build_config(variant: str = "transformer", size: str = "tiny", vocab_size: int = 32000,
                 match_params: bool = True, **overrides) -> TitansConfig:
    """The TitansConfig of ``variant`` at ``size`` (``size_defaults``), ``overrides`` (TitansConfig fields) winning;
    with ``match_params`` and no ``ffn_dim`` given, the SwiGLU width that matches the Transformer++ of the size."""
    config = TitansConfig(variant=variant, vocab_size=vocab_size, **{**size_defaults(variant, size), **overrides})
    if match_params and "ffn_dim" not in overrides and variant != "transformer":
        config.ffn_dim = matched_ffn_dim(config)
    return config


def build_causal_lm(variant: str = "transformer", size: str = "tiny", vocab_size: int = 32000,
                    match_params: bool = True, **overrides) -> TitansForCausalLM:
    """A freshly initialised model of ``variant`` at ``size``; ``overrides`` (TitansConfig fields) win.

    The training configs build ``model.net`` through here (``_target_: titans.models.build_causal_lm``), with
    ``memory`` already a MemoryConfig and ``vocab_size`` from the data."""
    return TitansForCausalLM(build_config(variant, size, vocab_size, match_params, **overrides))
