"""Token mixers: the part of a block that moves information between positions.

Every mixer is called as ``mixer(x, ctx, state) -> (y, new_state)`` with ``x`` the normalised block input [B, T, d],
``ctx`` a :class:`SeqContext` and ``state`` its typed state from the previous call of the same sequence (None on the
first call; see titans.models.cache). Training and generation share this one code path: without a generation cache
the new state is simply dropped. The first ``ctx.n_prefix`` rows of ``x`` are the persistent positions (first call
of a sequence only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from titans.layers import Attention, KVCache, RMSNorm, causal_attention, segment_attention
from titans.memory import MemoryState, NeuralMemory

from .cache import MACState, MAGState
from .config import TitansConfig


@dataclass
class SeqContext:
    positions: torch.Tensor  # absolute positions of the rows of x (RoPE)
    n_prefix: int  # persistent rows at the start of x (0 after the first call)
    token_offset: int  # real tokens of this sequence processed before x


def build_memory(cfg: TitansConfig) -> NeuralMemory:
    return NeuralMemory(cfg.d_model, cfg.memory)


class AttentionMixer(nn.Module):
    """Full causal (``attn``, Transformer++) or sliding-window attention with the persistent prefix
    always visible (``swa``)."""

    def __init__(self, cfg: TitansConfig, window: int | None):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window)

    def forward(self, x, ctx: SeqContext, state: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        return self.attn(x, ctx.positions, ctx.n_prefix, state)


class MemoryMixer(nn.Module):
    """LMM as the token mixer (Titans LMM, DeltaNet, Gated DeltaNet, TTT): y_t = M_t(q_t)."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.memory = build_memory(cfg)

    def forward(self, x, ctx: SeqContext, state: MemoryState | None) -> tuple[torch.Tensor, MemoryState]:
        return self.memory(x, state)


class MAGMixer(nn.Module):
    """Memory as a gate (Titans eqs. 26-28): o = W_o (RMSNorm_a(SWA*(x)) * sigmoid(RMSNorm_b(M(x))))."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, cfg.window)
        self.memory = build_memory(cfg)
        self.norm_attn = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.norm_memory = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, x, ctx: SeqContext, state: MAGState | None) -> tuple[torch.Tensor, MAGState]:
        y_attn, kv = self.attn.core(x, ctx.positions, ctx.n_prefix, None if state is None else state.kv)
        y_mem, memory = self.memory(x, None if state is None else state.memory)
        out = self.attn.wo(self.norm_attn(y_attn) * torch.sigmoid(self.norm_memory(y_mem)))
        return out, MAGState(kv=kv, memory=memory)


class MACMixer(nn.Module):
    """Memory as a context (Titans eqs. 21-25; the causal mask of docs/design.md).

    Per segment, with M the memory state after the previous segments:
      h = M*(segment)                        read only (eq. 21)
      y = Attn([persistent | h | segment])   token j sees all persistent keys, h_i and x_i for i <= j (eqs. 22-23)
      (o, M') = LMM(y, M)                    write the attention output, write-then-read (eq. 24)
      out = y * sigmoid(RMSNorm(o)),  M' is carried to the next segment (eq. 25).
    The retrieved rows h go through the memory's output stage (RMSNorm, SiLU gate, output projection), as every
    read of the LMM does: the paper's memory module always ends with that normalisation, gate and projection, and
    it puts h in the model's width (d_model), where attention's W_K / W_V can project it. The bare M*(q) lives in
    the memory heads' space, not in d_model. (A decision: docs/design.md, "MAC".)
    The read stream has its own query conv cache, continued from segment to segment; the memory weights it reads
    are those at the start of the segment (MACState.read). The persistent prefix is a segment of its own (causal
    attention among the persistent rows, no memory tokens) that is written into the memory like any segment, so
    every sequence starts from the same input-independent state.
    """

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.segment_len = cfg.segment_len
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window=None)
        self.memory = build_memory(cfg)
        self.norm_out = RMSNorm(cfg.d_model, cfg.norm_eps)

    def _write(self, y: torch.Tensor, memory: MemoryState) -> tuple[torch.Tensor, MemoryState]:
        """Eqs. 24-25: write y into the memory, gate y with the memory's read of it."""
        o, memory = self.memory(y, memory)
        return y * torch.sigmoid(self.norm_out(o)), memory

    def forward(self, x, ctx: SeqContext, state: MACState | None) -> tuple[torch.Tensor, MACState]:
        attn = self.attn
        if state is None:
            state = MACState(memory=self.memory.init_state(x.shape[0], x.device))
        cos, sin = attn.rope(ctx.positions, x.dtype)
        outs, p = [], ctx.n_prefix
        if p:
            q = attn.project_q(x[:, :p], cos[:p], sin[:p])
            k, v = attn.project_kv(x[:, :p], cos[:p], sin[:p])
            out, memory = self._write(attn.wo(attn.merge_heads(causal_attention(q, k, v))), state.memory)
            state = dataclasses.replace(state, memory=memory, k_prefix=k, v_prefix=v)
            outs.append(out)
        start, offset = p, ctx.token_offset
        while start < x.shape[1]:
            if offset % self.segment_len == 0:  # a new segment: read the memory as it is now, no segment keys yet
                state = dataclasses.replace(state, read=self.memory.read_state(state.memory, state.read),
                                            kv_h=KVCache(), kv_seg=KVCache())
            n = min(self.segment_len - offset % self.segment_len, x.shape[1] - start)
            piece, c, s = x[:, start:start + n], cos[start:start + n], sin[start:start + n]
            h, read = self.memory.retrieve(piece, state.read)  # eq. 21: M is not updated
            k_h, v_h, kv_h = state.kv_h.extend(*attn.project_kv(h, c, s))
            k_s, v_s, kv_seg = state.kv_seg.extend(*attn.project_kv(piece, c, s))
            o = segment_attention(attn.project_q(piece, c, s), state.k_prefix, state.v_prefix, k_h, v_h, k_s, v_s)
            out, memory = self._write(attn.wo(attn.merge_heads(o)), state.memory)
            state = dataclasses.replace(state, memory=memory, read=read, kv_h=kv_h, kv_seg=kv_seg)
            outs.append(out)
            start, offset = start + n, offset + n
        return (torch.cat(outs, 1) if len(outs) > 1 else outs[0]), state


def build_mixer(kind: str, cfg: TitansConfig) -> nn.Module:
    """The token mixer of a block of type ``kind`` (TitansConfig.block_types)."""
    if kind == "attn":
        return AttentionMixer(cfg, window=None)
    if kind == "swa":
        return AttentionMixer(cfg, window=cfg.window)
    if kind == "lmm":
        return MemoryMixer(cfg)
    if kind == "mag":
        return MAGMixer(cfg)
    if kind == "mac":
        return MACMixer(cfg)
    raise ValueError(f"unknown block type {kind!r}")
