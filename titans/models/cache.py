"""Generation cache for TitansForCausalLM, passed through ``past_key_values``.

One ``LayerCache`` per block holds what that block's token mixer needs to continue a sequence:
  attn   KVCache over all tokens (full attention: grows with the sequence)
  swa    KVCache bounded to the window, plus the persistent-prefix keys (always visible)
  lmm    the memory state (weights, momentum, conv caches, partial-chunk buffer)
  mag    both of the above
  mac    the memory state, the state at the start of the current segment (for the read-only
         retrieval), the current segment's inputs and keys/values (bounded by segment_len) and
         the persistent-prefix keys
The persistent tokens are run once, on the first call of a sequence; afterwards only their
keys/values and their effect on the memory state remain, in the cache.
"""
from __future__ import annotations

from typing import Callable

import torch


def _map_value(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if hasattr(value, "map"):
        out = value.map(fn)
        return value if out is None else out
    return value


class LayerCache(dict):
    """A block's cache entries (tensors, KVCache, MemoryState); ``map`` applies fn to every tensor."""

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "LayerCache":
        for key in list(self):
            self[key] = _map_value(self[key], fn)
        return self


class TitansCache:
    """Whole-model cache: per-layer caches plus the number of real tokens seen so far."""

    is_compileable = False

    def __init__(self, n_layers: int):
        self.layers = [LayerCache() for _ in range(n_layers)]
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TitansCache":
        for layer in self.layers:
            layer.map(fn)
        return self

    def reorder_cache(self, beam_idx: torch.LongTensor) -> "TitansCache":
        """Reorder the batch (beam search)."""
        return self.map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> "TitansCache":
        return self.map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> "TitansCache":
        return self.map(lambda t: t[indices])
