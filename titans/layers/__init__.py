"""Building blocks shared by every architecture: norms, MLP, RoPE, attention with KV cache."""
from .attention import Attention
from .attention_ops import (
    causal_attention,
    mac_segment_mask,
    prefix_window_mask,
    reference_attention,
    segment_attention,
    sliding_window_attention,
)
from .kv_cache import KVCache
from .mlp import SwiGLU
from .norm import RMSNorm
from .rope import apply_rope, rope_cos_sin

__all__ = [
    "Attention", "KVCache", "RMSNorm", "SwiGLU", "apply_rope", "rope_cos_sin", "causal_attention",
    "sliding_window_attention", "segment_attention", "reference_attention", "prefix_window_mask", "mac_segment_mask",
]
