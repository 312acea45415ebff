"""Attention kernels: naive dense-mask references and the linear-memory fast paths.

Layout everywhere: q, k, v are [B, H, T, D]. Masks are boolean, True = may attend.
The fast paths call torch.nn.functional.scaled_dot_product_attention on small blocks, so memory and
time grow linearly with the sequence length (no T x T mask or score matrix is ever built).

Sequences seen by the sliding-window and segment kernels are laid out as
``[persistent prefix (n_prefix) | tokens]``: the prefix is always visible to every token.
"""
import math

import torch
import torch.nn.functional as F

from . import flex_ops


# ----------------------------------------------------------------------------------------------
# naive references (dense masks; tests only, or tiny lengths)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) masked) v with an explicit [Tq, Tk] boolean mask."""
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    return torch.softmax(scores.to(work), dim=-1).to(q.dtype) @ v


def prefix_window_mask(n_prefix: int, n_tokens: int, window: int | None, device=None) -> torch.Tensor:
    """Dense [N, N] mask over ``[prefix | tokens]``, N = n_prefix + n_tokens.

    Prefix rows: causal within the prefix. Token t: every prefix position and tokens s with
    t - window < s <= t (``window=None``: all s <= t, i.e. plain causal attention).
    """
    n = n_prefix + n_tokens
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    mask = j <= i
    if window is not None:
        token_row = i >= n_prefix
        in_window = (j < n_prefix) | (i - j < window)
        mask = mask & (~token_row | in_window)
    return mask


def mac_segment_mask(n_prefix: int, seg_len: int, device=None) -> torch.Tensor:
    """Dense [L, n_prefix + 2L] mask for MAC (docs/design.md, "MAC"): keys ``[prefix | h | segment]``;
    segment token j sees every prefix position, h_i for i <= j and segment tokens i <= j."""
    j = torch.arange(seg_len, device=device)[:, None]
    i = torch.arange(seg_len, device=device)[None, :]
    causal = i <= j
    prefix = torch.ones(seg_len, n_prefix, dtype=torch.bool, device=device)
    return torch.cat([prefix, causal, causal], dim=1)


# ----------------------------------------------------------------------------------------------
# fast paths


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full causal attention; q holds the last Tq positions of the Tk keys (Tk >= Tq, KV cache)."""
    tq, tk = q.shape[2], k.shape[2]
    if tk < tq:
        raise ValueError(f"causal_attention: fewer keys ({tk}) than queries ({tq})")
    if tq == tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if tq == 1:
        return F.scaled_dot_product_attention(q, k, v)
    i = torch.arange(tq, device=q.device)[:, None] + (tk - tq)
    j = torch.arange(tk, device=q.device)[None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=j <= i)


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    k_prefix: torch.Tensor | None = None,
    v_prefix: torch.Tensor | None = None,
    block_size: int | None = None,
) -> torch.Tensor:
    """Sliding-window attention with an always-visible prefix, blockwise.

    q: [B, H, Tq, D], the queries of the last Tq tokens of k/v ([B, H, n_past + Tq, D]).
    Query token t sees tokens s with t - window < s <= t, and every prefix key.

    Queries are cut into blocks of ``block_size`` (default max(64, window // 4), measured fastest on
    CPU at window 2048); a block attends to ``window + block_size`` keys (its own block and the
    window before it) under a small [block, window + block] mask, so cost and memory are
    O(T * (window + block + n_prefix)). On CUDA the same mask runs as a flex_attention block mask (flex_ops.py).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    bsz, heads, tq, dim = q.shape
    n_past = k.shape[2] - tq
    if n_past < 0:
        raise ValueError(f"sliding_window_attention: fewer keys ({k.shape[2]}) than queries ({tq})")
    if flex_ops.use_flex(q):
        return flex_ops._guarded(lambda: _sliding_window_sdpa(q, k, v, window, k_prefix, v_prefix, block_size),
                                 True, flex_ops.flex_sliding_window, q, k, v, window, k_prefix, v_prefix)
    return _sliding_window_sdpa(q, k, v, window, k_prefix, v_prefix, block_size)


def _sliding_window_sdpa(q, k, v, window, k_prefix, v_prefix, block_size):
    """The blockwise SDPA scheme of ``sliding_window_attention``."""
    bsz, heads, tq, dim = q.shape
    n_past = k.shape[2] - tq
    if n_past > window:  # older keys are never visible
        k, v = k[:, :, n_past - window:], v[:, :, n_past - window:]
        n_past = window
    bq = max(1, min(block_size or max(64, window // 4), tq))
    nb = -(-tq // bq)
    pad_front, pad_back = window - n_past, nb * bq - tq
    span = window + bq

    def blocks(t: torch.Tensor) -> torch.Tensor:  # [B,H,S,D] -> [B*nb, H, span, D]
        t = F.pad(t, (0, 0, pad_front, pad_back))
        t = t.unfold(2, span, bq).transpose(-1, -2)  # [B, H, nb, span, D]
        return t.transpose(1, 2).reshape(bsz * nb, heads, span, dim)

    kb, vb = blocks(k), blocks(v)
    qb = F.pad(q, (0, 0, 0, pad_back)).view(bsz, heads, nb, bq, dim).transpose(1, 2).reshape(bsz * nb, heads, bq, dim)

    dev = q.device
    ii = torch.arange(bq, device=dev)[:, None]
    jj = torch.arange(span, device=dev)[None, :]
    rel = (jj > ii) & (jj <= ii + window)  # [bq, span], the same for every block
    n_prefix = 0 if k_prefix is None else k_prefix.shape[2]
    if n_prefix:
        def with_prefix(t):  # [B*nb, H, span, D] -> [B*nb, H, n_prefix + span, D]
            p = (k_prefix if t is kb else v_prefix).unsqueeze(1).expand(bsz, nb, heads, n_prefix, dim)
            return torch.cat([p.reshape(bsz * nb, heads, n_prefix, dim), t], 2)

        kb, vb = with_prefix(kb), with_prefix(vb)
        rel = torch.cat([rel.new_ones(bq, n_prefix), rel], dim=-1)
    # The first blocks also see the zero padding in front of the keys: they get their own mask; all
    # later blocks share one broadcast [bq, n_prefix + span] mask (a per-block mask would cost
    # O(T * window) memory once SDPA turns it into a float bias).
    n_special = min(nb, -(-pad_front // bq))
    valid = torch.arange(n_special, device=dev)[:, None] * bq + torch.arange(span, device=dev)[None, :] >= pad_front
    valid = torch.cat([valid.new_ones(n_special, n_prefix), valid], dim=-1)
    per_block = lambda t: t.view(bsz, nb, *t.shape[1:])  # noqa: E731
    qb, kb, vb = per_block(qb), per_block(kb), per_block(vb)
    flat = lambda t: t.reshape(-1, *t.shape[2:])  # noqa: E731
    outs = []
    if n_special:
        mask = (rel[None] & valid[:, None, :]).unsqueeze(1).repeat(bsz, 1, 1, 1)  # [B*n_special, 1, bq, keys]
        outs.append(F.scaled_dot_product_attention(flat(qb[:, :n_special]), flat(kb[:, :n_special]),
                                                   flat(vb[:, :n_special]), attn_mask=mask).view(bsz, n_special, heads, bq, dim))
    if n_special < nb:
        outs.append(F.scaled_dot_product_attention(flat(qb[:, n_special:]), flat(kb[:, n_special:]),
                                                   flat(vb[:, n_special:]), attn_mask=rel).view(bsz, nb - n_special, heads, bq, dim))
    out = torch.cat(outs, 1) if len(outs) > 1 else outs[0]  # [B, nb, H, bq, D]
    return out.transpose(1, 2).reshape(bsz, heads, nb * bq, dim)[:, :, :tq]


def segment_attention(
    q: torch.Tensor,
    k_prefix: torch.Tensor | None,
    v_prefix: torch.Tensor | None,
    k_mem: torch.Tensor,
    v_mem: torch.Tensor,
    k_seg: torch.Tensor,
    v_seg: torch.Tensor,
) -> torch.Tensor:
    """MAC attention inside one segment (Titans eq. 22-23 with the causal mask of docs/design.md, "MAC").

    q: [B, H, Tq, D], the last Tq segment tokens; k_mem/v_mem are the retrieved-memory tokens h and
    k_seg/v_seg the segment tokens, both covering the segment so far ([B, H, L, D], L >= Tq).
    Token j sees all prefix keys, h_i for i <= j and segment tokens i <= j.
    """
    tq, length = q.shape[2], k_seg.shape[2]
    if k_mem.shape[2] != length:
        raise ValueError(f"segment_attention: {k_mem.shape[2]} memory tokens for {length} segment tokens")
    if flex_ops.use_flex(q):
        return flex_ops._guarded(lambda: _segment_sdpa(q, k_prefix, v_prefix, k_mem, v_mem, k_seg, v_seg), True,
                                 flex_ops.flex_segment, q, k_prefix, v_prefix, k_mem, v_mem, k_seg, v_seg)
    return _segment_sdpa(q, k_prefix, v_prefix, k_mem, v_mem, k_seg, v_seg)


def _segment_sdpa(q, k_prefix, v_prefix, k_mem, v_mem, k_seg, v_seg):
    tq, length = q.shape[2], k_seg.shape[2]
    j = torch.arange(tq, device=q.device)[:, None] + (length - tq)
    i = torch.arange(length, device=q.device)[None, :]
    causal = i <= j
    parts_k, parts_v, parts_m = [k_mem, k_seg], [v_mem, v_seg], [causal, causal]
    if k_prefix is not None and k_prefix.shape[2] > 0:
        parts_k.insert(0, k_prefix)
        parts_v.insert(0, v_prefix)
        parts_m.insert(0, causal.new_ones(tq, k_prefix.shape[2]))
    return F.scaled_dot_product_attention(q, torch.cat(parts_k, 2), torch.cat(parts_v, 2), attn_mask=torch.cat(parts_m, 1))
