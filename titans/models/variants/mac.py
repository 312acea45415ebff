"""Titans MAC, memory as a context (paper section 4.1, eqs. 21-25; the causal mask of docs/design.md, "MAC").

The sequence is cut into segments of ``segment_len`` tokens. Per segment S, with M the memory after the earlier
segments and P the persistent tokens (eq. 19, prepended to the sequence by TitansModel):

    h = M*(S)                          read only, M is not updated                      (eq. 21)
    y = Attn([P | h | S])              token j sees P, h_i and S_i for i <= j           (eqs. 22-23)
    M' = M(y),  o = M'*(y)             the attention output is written into the memory  (eq. 24)
    out = y * sigmoid(RMSNorm(o))      the memory's read of y gates y; M' goes on       (eq. 25)

Decisions (docs/design.md, "MAC"): h goes through the memory's output stage (RMSNorm, SiLU gate, output projection),
as every read of the LMM does, which puts it in d_model where attention's W_K / W_V project it; h rows take their
token's RoPE position; only segment positions are queries. The read stream has its own query conv cache, continued
from segment to segment; the memory it reads is the one at the start of the segment (``MACState.read``). The
persistent prefix is a segment of its own (causal attention among the persistent rows, no memory rows) written into
the memory like any segment, so every sequence starts from the same input-independent state.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch import nn

from titans.layers import Attention, KVCache, RMSNorm, causal_attention, segment_attention
from titans.memory import MemoryState, ReadState

from ..cache import map_value
from .base import TITANS, BlockType, SeqContext, VariantSpec, build_memory

if TYPE_CHECKING:
    from ..config import TitansConfig


@dataclass(frozen=True)
class MACState:
    """Memory as a context: what MACMixer carries from call to call.

    memory   the write stream after every token so far (M, S carried from segment to segment)
    read     the current segment's read stream: M as it stood at the segment's start, and the query conv cache
             (continued across segments); None before the first segment
    kv_h     keys/values of the current segment's retrieved rows h
    kv_seg   keys/values of the current segment's tokens
    k_prefix, v_prefix   keys/values of the persistent tokens (None without them)
    """

    memory: MemoryState
    read: ReadState | None = None
    kv_h: KVCache = field(default_factory=KVCache)
    kv_seg: KVCache = field(default_factory=KVCache)
    k_prefix: torch.Tensor | None = None
    v_prefix: torch.Tensor | None = None

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "MACState":
        return MACState(**{f.name: map_value(getattr(self, f.name), fn) for f in dataclasses.fields(self)})


def segment_pieces(start: int, stop: int, token_offset: int, segment_len: int) -> Iterator[tuple[int, int, bool]]:
    """Cut rows ``start:stop`` of a call into pieces that each lie inside one segment: (first row, end row, whether
    the piece starts a new segment). ``token_offset`` is the number of tokens of the sequence before row ``start``
    (a call may begin in the middle of a segment that an earlier call started)."""
    while start < stop:
        into_segment = token_offset % segment_len
        n = min(segment_len - into_segment, stop - start)
        yield start, start + n, into_segment == 0
        start, token_offset = start + n, token_offset + n


class MACMixer(nn.Module):
    """Memory as a context (eqs. 21-25; see the module's docstring)."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.segment_len = cfg.segment_len
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window=None)
        self.memory = build_memory(cfg)
        self.norm_out = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, x, ctx: SeqContext, state: MACState | None) -> tuple[torch.Tensor, MACState]:
        if state is None:
            state = MACState(memory=self.memory.init_state(x.shape[0], x.device))
        cos, sin = self.attn.rope(ctx.positions, x.dtype)
        outs, p = [], ctx.n_prefix
        if p:  # the persistent tokens P (eq. 19): first call of a sequence only
            out, state = self._persistent_segment(x[:, :p], cos[:p], sin[:p], state)
            outs.append(out)
        for start, end, new_segment in segment_pieces(p, x.shape[1], ctx.token_offset, self.segment_len):
            if new_segment:
                state = self._start_segment(state)
            out, state = self._segment(x[:, start:end], cos[start:end], sin[start:end], state)
            outs.append(out)
        return (torch.cat(outs, 1) if len(outs) > 1 else outs[0]), state

    def _segment(self, segment, cos, sin, state: MACState) -> tuple[torch.Tensor, MACState]:
        """Eqs. 21-25 on a segment S (or the next tokens of the current one)."""
        h, read = self.memory.retrieve(segment, state.read)  # eq. 21: h = M*(S), M not updated
        y, kv_h, kv_seg = self._attend(segment, h, cos, sin, state)  # eqs. 22-23: y = Attn([P | h | S])
        out, memory = self._write_and_gate(y, state.memory)  # eqs. 24-25
        return out, dataclasses.replace(state, memory=memory, read=read, kv_h=kv_h, kv_seg=kv_seg)

    def _attend(self, segment, h, cos, sin, state: MACState) -> tuple[torch.Tensor, KVCache, KVCache]:
        """Eqs. 22-23: attention of the segment's tokens over [P | h | S] (the causal mask of
        ``segment_attention``); h and S of the current segment so far come from the caches."""
        attn = self.attn
        k_h, v_h, kv_h = state.kv_h.extend(*attn.project_kv(h, cos, sin))
        k_s, v_s, kv_seg = state.kv_seg.extend(*attn.project_kv(segment, cos, sin))
        o = segment_attention(attn.project_q(segment, cos, sin), state.k_prefix, state.v_prefix, k_h, v_h, k_s, v_s)
        return attn.wo(attn.merge_heads(o)), kv_h, kv_seg

    def _write_and_gate(self, y: torch.Tensor, memory: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        """Eq. 24: write y into the memory (M' = M(y)) and read it back (o = M'*(y)); eq. 25: gate y with o."""
        o, memory = self.memory(y, memory)
        return y * torch.sigmoid(self.norm_out(o)), memory

    def _persistent_segment(self, prefix, cos, sin, state: MACState) -> tuple[torch.Tensor, MACState]:
        """P as a segment of its own: causal attention among the persistent rows (no h), written into the memory
        (eqs. 24-25); their keys/values stay visible to every later segment (eq. 22)."""
        attn = self.attn
        q = attn.project_q(prefix, cos, sin)
        k, v = attn.project_kv(prefix, cos, sin)
        out, memory = self._write_and_gate(attn.wo(attn.merge_heads(causal_attention(q, k, v))), state.memory)
        return out, dataclasses.replace(state, memory=memory, k_prefix=k, v_prefix=v)

    def _start_segment(self, state: MACState) -> MACState:
        """A new segment: its reads see the memory as it is now (eq. 21's M_{t-1}); no h or segment keys yet."""
        return dataclasses.replace(state, read=self.memory.read_state(state.memory, state.read),
                                   kv_h=KVCache(), kv_seg=KVCache())


MAC_BLOCK = BlockType("mac", MACMixer, state=MACState, uses_memory=True, uses_segment=True)

MAC = VariantSpec(
    name="mac", display_name="Titans (MAC)", description="Titans MAC (memory as a context)",
    blocks=(MAC_BLOCK,), family=TITANS, memory_preset="titans", n_persistent=128,
    equations="eqs. 21-25 (h = M*(S), y = Attn([P | h | S]), M' = M(y), o = y ⊗ M'*(y)), 19 (persistent memory)",
)
