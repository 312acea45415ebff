"""Attention on a GPU: the sliding-window, MAC segment and persistent-prefix masks as flex_attention block masks.

On CUDA tensors ``sliding_window_attention`` and ``segment_attention`` (attention_ops.py) call these instead of
their blockwise SDPA scheme: ``torch.nn.attention.flex_attention`` compiled once per shape, with a block mask that
skips every fully masked 128 x 128 tile, so the cost is O(T * (window + prefix)) and no T x T mask exists. Block
masks are cached per (shape, window, prefix, device). TITANS_FLEX=0 keeps the SDPA scheme; if flex_attention
cannot be compiled on a device, the SDPA scheme takes over for the rest of the process, with one warning.
On CPU the SDPA scheme stays the default; the tests run these functions there through flex_attention's eager
(unfused, exact) implementation against the dense-mask references.

Masks (True = may attend), keys laid out as ``[prefix (P) | ...]``:
    sliding window  query t (absolute token position n_past + t) sees every prefix key and tokens s with
                    t - window < s <= t                                       (SWA, MAG, MAL)
    MAC segment     keys [prefix | h (L) | segment (L)]; segment token j sees the prefix, h_i and x_i for i <= j
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch: the SDPA scheme everywhere
    create_block_mask = flex_attention = None

_FAILED: list[str] = []


def flex_available() -> bool:
    return flex_attention is not None


def use_flex(q: torch.Tensor) -> bool:
    """Whether attention_ops dispatches this call to flex_attention: CUDA tensors, more than one query."""
    return (flex_attention is not None and q.is_cuda and q.shape[2] > 1 and not _FAILED
            and os.environ.get("TITANS_FLEX", "1") != "0")


@functools.lru_cache(maxsize=None)
def _compiled_flex():
    return torch.compile(flex_attention, dynamic=False)


def _run(q, k, v, block_mask, compiled: bool):
    fn = _compiled_flex() if compiled else flex_attention
    if not compiled:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
            return fn(q, k, v, block_mask=block_mask)
    return fn(q, k, v, block_mask=block_mask)


@functools.lru_cache(maxsize=64)
def _window_mask(n_prefix: int, n_past: int, tq: int, window: int, device: str):
    def mask(b, h, qi, kv):
        s = kv - n_prefix
        t = qi + n_past
        return (kv < n_prefix) | ((s <= t) & (t - s < window))

    return create_block_mask(mask, None, None, tq, n_prefix + n_past + tq, device=device)


@functools.lru_cache(maxsize=64)
def _segment_mask(n_prefix: int, length: int, tq: int, device: str):
    def mask(b, h, qi, kv):
        j = qi + (length - tq)
        i = kv - n_prefix
        in_h = (i >= 0) & (i < length) & (i <= j)
        in_seg = (i >= length) & (i - length <= j)
        return (kv < n_prefix) | in_h | in_seg

    return create_block_mask(mask, None, None, tq, n_prefix + 2 * length, device=device)


def _guarded(fallback, compiled: bool, fn, *args):
    """Run ``fn``; on a compile failure on the GPU, warn once and use ``fallback`` from then on."""
    if not compiled:
        return fn(*args)
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - the SDPA scheme computes the same attention
        _FAILED.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        warnings.warn(f"titans: flex_attention failed on this device ({_FAILED[0]}); using the SDPA scheme from "
                      "now on (TITANS_FLEX=0 silences this)", RuntimeWarning, stacklevel=3)
        return fallback()


def flex_sliding_window(q, k, v, window: int, k_prefix=None, v_prefix=None, *, compiled: bool = True):
    """Same contract as attention_ops.sliding_window_attention (q: the last Tq of the token keys k/v)."""
    tq = q.shape[2]
    n_past = k.shape[2] - tq
    n_prefix = 0 if k_prefix is None else k_prefix.shape[2]
    if n_prefix:
        k, v = torch.cat([k_prefix, k], 2), torch.cat([v_prefix, v], 2)
    block_mask = _window_mask(n_prefix, n_past, tq, window, str(q.device))
    return _run(q, k, v, block_mask, compiled)


def flex_segment(q, k_prefix, v_prefix, k_mem, v_mem, k_seg, v_seg, *, compiled: bool = True):
    """Same contract as attention_ops.segment_attention."""
    tq, length = q.shape[2], k_seg.shape[2]
    parts_k, parts_v = [k_mem, k_seg], [v_mem, v_seg]
    n_prefix = 0 if k_prefix is None else k_prefix.shape[2]
    if n_prefix:
        parts_k.insert(0, k_prefix)
        parts_v.insert(0, v_prefix)
    block_mask = _segment_mask(n_prefix, length, tq, str(q.device))
    return _run(q, torch.cat(parts_k, 2), torch.cat(parts_v, 2), block_mask, compiled)


__all__ = ["flex_available", "use_flex", "flex_sliding_window", "flex_segment"]
