"""Token mixers: the part of a block that moves information between positions.

Every mixer is called as ``mixer(x, ctx, cache)`` with ``x`` the normalised block input
[B, T, d], ``ctx`` a :class:`SeqContext` and ``cache`` a :class:`LayerCache` (also used, as a
throw-away, when there is no generation cache, so training and generation share one code path).
The first ``ctx.n_prefix`` rows of ``x`` are the persistent positions (first call of a sequence only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from titans.layers import Attention, KVCache, RMSNorm, causal_attention, segment_attention

from .cache import LayerCache
from .config import TitansConfig


@dataclass
class SeqContext:
    positions: torch.Tensor  # absolute positions of the rows of x (RoPE)
    n_prefix: int  # persistent rows at the start of x (0 after the first call)
    token_offset: int  # real tokens of this sequence processed before x


def _memory_classes():
    try:
        from titans.memory import MemoryConfig, NeuralMemory
    except ImportError as err:  # pragma: no cover - depends on developer A's package
        raise ImportError("titans.memory (NeuralMemory) is required by the memory variants") from err
    return MemoryConfig, NeuralMemory


def build_memory(cfg: TitansConfig) -> nn.Module:
    MemoryConfig, NeuralMemory = _memory_classes()
    return NeuralMemory(cfg.d_model, MemoryConfig(**cfg.memory))


class AttentionMixer(nn.Module):
    """Full causal (``attn``, Transformer++) or sliding-window attention with the persistent prefix
    always visible (``swa``)."""

    def __init__(self, cfg: TitansConfig, window: int | None):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window)

    def forward(self, x, ctx: SeqContext, cache: LayerCache):
        kv = cache.setdefault("kv", self.attn.new_cache())
        return self.attn(x, ctx.positions, ctx.n_prefix, kv)


class MemoryMixer(nn.Module):
    """LMM as the token mixer (Titans LMM, DeltaNet, Gated DeltaNet, TTT): y_t = M_t(q_t)."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.memory = build_memory(cfg)

    def forward(self, x, ctx: SeqContext, cache: LayerCache):
        y, cache["memory"] = self.memory(x, cache.get("memory"))
        return y


class MAGMixer(nn.Module):
    """Memory as a gate (Titans eqs. 26-28): o = W_o (RMSNorm_a(SWA*(x)) * sigmoid(RMSNorm_b(M(x))))."""

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, cfg.window)
        self.memory = build_memory(cfg)
        self.norm_attn = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.norm_memory = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, x, ctx: SeqContext, cache: LayerCache):
        kv = cache.setdefault("kv", self.attn.new_cache())
        y_attn = self.attn.core(x, ctx.positions, ctx.n_prefix, kv)
        y_mem, cache["memory"] = self.memory(x, cache.get("memory"))
        return self.attn.wo(self.norm_attn(y_attn) * torch.sigmoid(self.norm_memory(y_mem)))


class MACMixer(nn.Module):
    """Memory as a context (Titans eqs. 21-25, DESIGN.md section 2).

    Per segment, with M the memory state after the previous segments:
      h = M*(segment)                        read only (eq. 21)
      y = Attn([persistent | h | segment])   token j sees all persistent keys, h_i and x_i for i <= j
      (o, M') = LMM(y, M)                    write the attention output, write-then-read (eqs. 24-25)
      out = y * sigmoid(RMSNorm(o)),  M' is carried to the next segment.
    The read-only stream h has its own query conv cache (MemoryState.retrieve_conv_cache), continued
    from segment to segment; the memory weights it reads are those at the start of the segment.
    The persistent prefix is a segment of its own (causal attention among the persistent rows, no
    memory tokens) that is written into the memory like any segment, so every sequence starts from
    the same input-independent state.
    """

    def __init__(self, cfg: TitansConfig):
        super().__init__()
        self.segment_len = cfg.segment_len
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.rope_theta, window=None)
        self.memory = build_memory(cfg)
        self.norm_out = RMSNorm(cfg.d_model, cfg.norm_eps)

    def _write(self, y, cache):
        o, cache["memory"] = self.memory(y, cache["memory"])
        return y * torch.sigmoid(self.norm_out(o))

    def forward(self, x, ctx: SeqContext, cache: LayerCache):
        attn, bsz = self.attn, x.shape[0]
        if "memory" not in cache:
            cache["memory"] = self.memory.init_state(bsz, x.device)
        cos, sin = attn.rope(ctx.positions, x.dtype)
        outs, p = [], ctx.n_prefix
        if p:
            q = attn.project_q(x[:, :p], cos[:p], sin[:p])
            k, v = attn.project_kv(x[:, :p], cos[:p], sin[:p])
            cache["k_prefix"], cache["v_prefix"] = k, v
            outs.append(self._write(attn.wo(attn.merge_heads(causal_attention(q, k, v))), cache))
        start, offset = p, ctx.token_offset
        while start < x.shape[1]:
            in_seg = offset % self.segment_len
            if in_seg == 0:  # a new segment: read from the memory as it is now, reset the segment's keys
                read = cache["memory"]
                if "read_state" in cache:  # the query conv of the read stream continues across segments
                    read = dataclasses.replace(read, retrieve_conv_cache=cache["read_state"].retrieve_conv_cache)
                cache["read_state"] = read
                cache["kv_h"], cache["kv_seg"] = KVCache(), KVCache()
            n = min(self.segment_len - in_seg, x.shape[1] - start)
            piece, c, s = x[:, start:start + n], cos[start:start + n], sin[start:start + n]
            h, cache["read_state"] = self.memory.retrieve(piece, cache["read_state"])  # eq. 21, M not updated
            k_h, v_h = cache["kv_h"].extend(*attn.project_kv(h, c, s))
            k_s, v_s = cache["kv_seg"].extend(*attn.project_kv(piece, c, s))
            q = attn.project_q(piece, c, s)
            o = segment_attention(q, cache.get("k_prefix"), cache.get("v_prefix"), k_h, v_h, k_s, v_s)
            outs.append(self._write(attn.wo(attn.merge_heads(o)), cache))
            start, offset = start + n, offset + n
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0]


def build_mixer(kind: str, cfg: TitansConfig) -> nn.Module:
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
