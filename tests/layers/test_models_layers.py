"""titans.layers: the blockwise attention kernels equal dense-mask references; norms, RoPE, cache."""
import pytest
import torch

from titans.layers import (
    Attention,
    RMSNorm,
    apply_rope,
    causal_attention,
    mac_segment_mask,
    prefix_window_mask,
    reference_attention,
    rope_cos_sin,
    segment_attention,
    sliding_window_attention,
)
from numerics import assert_within_reference_error


pytestmark = pytest.mark.usefixtures("single_thread")


def _qkv(n, heads=3, dim=8, batch=2):
    g = torch.Generator().manual_seed(n)
    return [torch.randn(batch, heads, n, dim, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("n_prefix,n_tokens,window", [(0, 37, 8), (3, 37, 8), (4, 20, 64), (2, 33, 5), (3, 1, 6), (5, 16, 1)])
@pytest.mark.parametrize("block_size", [None, 3])
def test_sliding_window_equals_dense_reference(n_prefix, n_tokens, window, block_size):
    q, k, v = _qkv(n_prefix + n_tokens)
    ref = reference_attention(q, k, v, prefix_window_mask(n_prefix, n_tokens, window))[:, :, n_prefix:]
    p = slice(0, n_prefix)
    t = slice(n_prefix, None)
    out = sliding_window_attention(q[:, :, t], k[:, :, t], v[:, :, t], window, k[:, :, p], v[:, :, p], block_size)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    # queries for the last few tokens only, keys of the whole past (the KV-cache case)
    last = min(7, n_tokens)
    out = sliding_window_attention(q[:, :, -last:], k[:, :, t], v[:, :, t], window, k[:, :, p], v[:, :, p], block_size)
    torch.testing.assert_close(out, ref[:, :, -last:], atol=1e-12, rtol=0)


def test_prefix_window_mask_semantics():
    m = prefix_window_mask(2, 6, 3)
    assert m[2 + 5, :2].all()  # prefix always visible
    assert m[2 + 5, 2 + 3 : 2 + 6].all() and not m[2 + 5, 2 + 2]  # window of 3 tokens
    assert not m[2 + 1, 2 + 2]  # causal
    assert m[1, 0] and not m[0, 1]  # causal inside the prefix
    assert torch.equal(prefix_window_mask(0, 5, None), torch.ones(5, 5, dtype=torch.bool).tril())


@pytest.mark.parametrize("tq", [1, 4, 9])
def test_causal_attention_with_past(tq):
    q, k, v = _qkv(9)
    ref = reference_attention(q, k, v, prefix_window_mask(0, 9, None))
    torch.testing.assert_close(causal_attention(q[:, :, -tq:], k, v), ref[:, :, -tq:], atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_prefix,length,tq", [(3, 6, 6), (0, 5, 5), (4, 7, 2), (2, 6, 1)])
def test_segment_attention_equals_dense_reference(n_prefix, length, tq):
    q, k, v = _qkv(n_prefix + 2 * length)
    qs = q[:, :, n_prefix + length:]  # segment queries
    ref = reference_attention(qs, k, v, mac_segment_mask(n_prefix, length))
    p, h, s = slice(0, n_prefix), slice(n_prefix, n_prefix + length), slice(n_prefix + length, None)
    out = segment_attention(qs[:, :, -tq:], k[:, :, p], v[:, :, p], k[:, :, h], v[:, :, h], k[:, :, s], v[:, :, s])
    torch.testing.assert_close(out, ref[:, :, -tq:], atol=1e-12, rtol=0)


def test_mac_mask_semantics():
    m = mac_segment_mask(2, 4)  # keys [p p | h0..h3 | x0..x3]
    assert m[:, :2].all()
    assert m[1, 2 + 1] and not m[1, 2 + 2]  # h_i, i <= j
    assert m[1, 6 + 1] and not m[1, 6 + 2]  # x_i, i <= j


def test_rope_is_relative():
    cos, sin = rope_cos_sin(torch.arange(40), 16, 10000.0, torch.float64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64), torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64)
    score = lambda i, j: (apply_rope(q, cos[i : i + 1], sin[i : i + 1]) * apply_rope(k, cos[j : j + 1], sin[j : j + 1])).sum()
    torch.testing.assert_close(score(10, 3), score(37, 30))


def test_rmsnorm(tol_seed):
    """mean(y^2) = ms / (ms + eps) exactly (ms = mean(x^2)); float32: within 8 eps x 8 (tests/numerics.py)."""
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(tol_seed)) * 5
    norm = RMSNorm(10)
    ms = x.double().pow(2).mean(-1)
    assert_within_reference_error(norm(x).pow(2).mean(-1), ms / (ms + norm.eps))


@pytest.mark.parametrize("window", [None, 4])
def test_attention_module_cache_streaming(window):
    torch.manual_seed(0)
    attn = Attention(16, 2, window=window).double()
    x = torch.randn(2, 3 + 15, 16, dtype=torch.float64)  # 3 persistent rows + 15 tokens
    full, _ = attn(x, torch.arange(18), n_prefix=3)
    out, cache = attn(x[:, :8], torch.arange(8), n_prefix=3)
    outs, pos = [out], 8
    for step in (1, 5, 1, 3):
        before, n_before = cache, cache.n_tokens
        out, cache = attn(x[:, pos : pos + step], torch.arange(pos, pos + step), n_prefix=0, cache=cache)
        assert cache is not before and before.n_tokens == n_before  # caches are values: the old one is unchanged
        outs.append(out)
        pos += step
    torch.testing.assert_close(torch.cat(outs, 1), full)
    if window is not None:
        assert cache.n_tokens <= window and cache.k_prefix.shape[2] == 3  # bounded KV cache


def test_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        Attention(10, 3)
