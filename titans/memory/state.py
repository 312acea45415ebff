"""Recurrent state of a NeuralMemory: what a stream needs to continue exactly where it stopped.

States are values: a call returns a new one and never changes the one it was given (``map`` returns a copy too), so
a state can be kept, reordered or branched freely (beam search, the MAC read stream).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from torch import Tensor


def _map_fields(state, fn: Callable[[Tensor], Tensor]):
    """A copy of the dataclass ``state`` with ``fn`` applied to every tensor (also inside list fields)."""
    def apply(value):
        if value is None:
            return None
        if isinstance(value, list):
            return [fn(t) for t in value]
        return fn(value)

    return type(state)(**{f.name: apply(getattr(state, f.name)) for f in fields(state)})


@dataclass(frozen=True)
class MemoryState:
    """The write stream: all tensors have the batch on axis 0 (``state.map(lambda t: t.index_select(0, idx))``
    reorders it).

    weights      per memory layer, [B, H, d_in, d_out]: M at the start of the current chunk (M_{t'}).
    momentum     per memory layer, [B, H, d_in, d_out]: S at the start of the current chunk; [] when eta = 0.
    buf_k, buf_v [B, H, n, head_dim]: keys/values of the n tokens already seen in the current, unfinished
                 chunk (0 <= n < chunk_size); the chunk rule needs them to finish that chunk.
    buf_lr, buf_log_eta, buf_log_decay  [B, H, n, *]: their gates (log_eta / log_decay None when disabled).
    conv_cache   [B, kernel-1, 3*H*head_dim]: last pre-conv q|k|v projections (None: no conv).
    Memory tensors are float32 (float64 for a float64 module) whatever the autocast dtype.
    """

    weights: list[Tensor]
    momentum: list[Tensor]
    buf_k: Tensor
    buf_v: Tensor
    buf_lr: Tensor
    buf_log_eta: Tensor | None
    buf_log_decay: Tensor | None
    conv_cache: Tensor | None

    @property
    def chunk_pos(self) -> int:
        """Position inside the current chunk (= number of buffered tokens)."""
        return self.buf_k.shape[2]

    @property
    def batch_size(self) -> int:
        return self.buf_k.shape[0]

    def map(self, fn: Callable[[Tensor], Tensor]) -> "MemoryState":
        """A new state with ``fn`` applied to every tensor (detach, index_select, .to(device), ...)."""
        return _map_fields(self, fn)

    def detach(self) -> "MemoryState":
        return self.map(lambda t: t.detach())

    def tensors(self) -> list[Tensor]:
        out: list[Tensor] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                out.extend(value)
            elif value is not None:
                out.append(value)
        return out


@dataclass(frozen=True)
class ReadState:
    """The read-only stream of :meth:`NeuralMemory.retrieve` (MAC's h, paper eq. 21): the memory it reads and the
    query projection's conv cache.

    weights      per memory layer, [B, H, d_in, d_out]: M after every token of the write stream when the reading
                 began (a partial chunk finished), unchanged by reading.
    conv_cache   [B, kernel-1, H*head_dim]: last pre-conv query projections of the read stream (None: no conv).
    """

    weights: list[Tensor]
    conv_cache: Tensor | None

    def map(self, fn: Callable[[Tensor], Tensor]) -> "ReadState":
        return _map_fields(self, fn)
