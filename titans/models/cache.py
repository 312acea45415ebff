"""Generation cache for TitansForCausalLM, passed through ``past_key_values`` (or ``cache``, transformers 5.x).

Each block's token mixer keeps one typed state that continues its sequence (its ``BlockType.state``, defined in its
variant module, titans.models.variants):
  attn   KVCache over all tokens (full attention: grows with the sequence)
  swa    KVCache bounded to the window, plus the persistent-prefix keys (always visible)
  lmm    MemoryState (weights, momentum, conv cache, partial-chunk buffer)
  mag    MAGState: both of the above
  mac    MACState: the memory state, the read stream of the current segment (ReadState), the current segment's
         keys/values (bounded by segment_len) and the persistent-prefix keys
The persistent tokens are run once, on the first call of a sequence; afterwards only their keys/values and their
effect on the memory state remain, in the cache.

One convention: a mixer state is a value. A mixer returns the new state and never changes the one it was given;
``map`` returns a copy. The only mutable object is ``TitansCache``, the container generate() holds: the model puts
each block's new state into it, and ``reorder_cache`` & co. act in place, as Hugging Face's Cache API requires.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch


def map_value(value, fn: Callable[[torch.Tensor], torch.Tensor]):
    """``fn`` applied to a tensor, ``value.map(fn)`` for a state, None kept."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return fn(value)
    return value.map(fn)


class MixerState(Protocol):
    """The state one block's mixer carries from call to call (each variant module defines its own; see
    ``BlockType.state``): a value whose ``map(fn)`` returns a copy with ``fn`` applied to every tensor."""

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "MixerState": ...


class TitansCache:
    """Whole-model cache: one mixer state per block (None until the block has run) and the number of real tokens
    seen so far."""

    is_compileable = False

    def __init__(self, n_layers: int):
        self.layers: list[MixerState | None] = [None] * n_layers
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def apply_(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TitansCache":
        """Replace every block's state by its ``map(fn)``, in place."""
        self.layers = [map_value(state, fn) for state in self.layers]
        return self

    def reorder_cache(self, beam_idx: torch.LongTensor) -> "TitansCache":
        """Reorder the batch (beam search)."""
        return self.apply_(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> "TitansCache":
        return self.apply_(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> "TitansCache":
        return self.apply_(lambda t: t[indices])
