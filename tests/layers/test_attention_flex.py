"""titans.layers.flex_ops: the sliding-window, MAC segment and prefix masks as flex_attention block masks equal the
dense-mask references. On CPU through flex_attention's eager (exact) implementation in float64; the ``gpu`` tests
run the compiled kernels on CUDA in bf16 (skipped without CUDA), against the float64 reference on the same rounded
inputs, bounded by the dense reference's own bf16 error there (tests/numerics.py, assert_bf16_like_dense)."""

import pytest
import torch

from titans.layers import flex_ops
from titans.layers.attention_ops import (mac_segment_mask, prefix_window_mask, reference_attention,
                                         segment_attention, sliding_window_attention)
from numerics import assert_within_reference_error

pytestmark = pytest.mark.skipif(not flex_ops.flex_available(), reason="torch without flex_attention")
CUDA = torch.cuda.is_available()


def _qkv(n, device="cpu", dtype=torch.float64, B=2, H=2, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, D, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
            for _ in range(3)]


def assert_bf16_like_dense(out, q, k, v, mask, what=""):
    """bf16 ``out`` against the float64 dense reference on the same (rounded) q, k, v: within 3x the dense
    reference's own error in bf16 (its scores rounded to bf16; flex keeps them in float32), or 3 bf16 eps x the
    output's size. On CPU (eager flex) its error stayed below 0.8x the dense one's over 50 seeds."""
    ref64 = reference_attention(q.double(), k.double(), v.double(), mask)[:, :, -out.shape[2]:]
    dense = reference_attention(q, k, v, mask)[:, :, -out.shape[2]:]
    assert out.dtype == dense.dtype == torch.bfloat16
    assert_within_reference_error(out, ref64, dense, factor=3, ulps=1, what=what)


def _window_case(n_prefix, n_tokens, window, last, device="cpu", dtype=torch.float64, compiled=False, seed=0):
    q, k, v = _qkv(n_prefix + n_tokens, device, dtype, seed=seed)
    ref = reference_attention(q.double(), k.double(), v.double(),
                              prefix_window_mask(n_prefix, n_tokens, window, device))[:, :, -last:]
    p, t = slice(0, n_prefix), slice(n_prefix, None)
    kp, vp = (k[:, :, p], v[:, :, p]) if n_prefix else (None, None)
    out = flex_ops.flex_sliding_window(q[:, :, -last:], k[:, :, t], v[:, :, t], window, kp, vp, compiled=compiled)
    return out, ref


@pytest.mark.parametrize("n_prefix,window,last", [(0, 8, 40), (4, 8, 40), (4, 5, 9), (3, 64, 40)])
def test_flex_sliding_window_equals_dense_reference(n_prefix, window, last):
    """Token queries (the last ``last`` of 40 tokens, i.e. with a KV cache when last < 40) against the dense
    [prefix | tokens] mask."""
    out, ref = _window_case(n_prefix, 40, window, last)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_flex_sliding_window_mask_is_not_causal_full():
    """The check can fail: a window one token too wide differs from the reference."""
    q, k, v = _qkv(30)
    out = flex_ops.flex_sliding_window(q, k, v, 9, compiled=False)
    ref = reference_attention(q, k, v, prefix_window_mask(0, 30, 8))
    assert (out - ref).abs().max() > 1e-3


@pytest.mark.parametrize("n_prefix,length,tq", [(0, 20, 20), (4, 20, 20), (4, 20, 7), (2, 33, 1)])
def test_flex_segment_equals_dense_reference(n_prefix, length, tq):
    q, k, v = _qkv(n_prefix + 2 * length)
    qs = q[:, :, :length]
    ref = reference_attention(qs, k, v, mac_segment_mask(n_prefix, length))[:, :, -tq:]
    p, h, s = slice(0, n_prefix), slice(n_prefix, n_prefix + length), slice(n_prefix + length, None)
    kp, vp = (k[:, :, p], v[:, :, p]) if n_prefix else (None, None)
    out = flex_ops.flex_segment(qs[:, :, -tq:], kp, vp, k[:, :, h], v[:, :, h], k[:, :, s], v[:, :, s],
                                compiled=False)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_prefix,window,last", [(0, 64, 300), (16, 128, 37)])
def test_bf16_flex_and_sdpa_schemes_within_the_dense_bf16_error(n_prefix, window, last, tol_seed):
    """bf16 on CPU: flex_attention's eager implementation and the SDPA scheme of attention_ops, each against the
    float64 reference on the same rounded inputs, within 3x the dense bf16 reference's error (or 3 bf16 eps)."""
    out, _ = _window_case(n_prefix, 300, window, last, dtype=torch.bfloat16, seed=tol_seed)
    q, k, v = _qkv(n_prefix + 300, dtype=torch.bfloat16, seed=tol_seed)
    mask = prefix_window_mask(n_prefix, 300, window)
    assert_bf16_like_dense(out, q, k, v, mask, "flex eager")
    p, t = slice(0, n_prefix), slice(n_prefix, None)
    kp, vp = (k[:, :, p], v[:, :, p]) if n_prefix else (None, None)
    sdpa = sliding_window_attention(q[:, :, -last:], k[:, :, t], v[:, :, t], window, kp, vp)
    assert_bf16_like_dense(sdpa, q, k, v, mask, "sdpa scheme")


def test_cpu_keeps_the_sdpa_scheme(monkeypatch):
    """On CPU tensors attention_ops never calls flex_attention."""
    def boom(*a, **k):
        raise AssertionError("flex called on CPU")

    monkeypatch.setattr(flex_ops, "flex_sliding_window", boom)
    monkeypatch.setattr(flex_ops, "flex_segment", boom)
    q, k, v = _qkv(24)
    sliding_window_attention(q, k, v, 8)
    segment_attention(q[:, :, :12], None, None, k[:, :, :12], v[:, :, :12], k[:, :, 12:], v[:, :, 12:])
    assert not flex_ops.use_flex(q)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("n_prefix,window,last", [(0, 64, 300), (16, 128, 300), (16, 128, 37)])
def test_gpu_flex_sliding_window_bf16(n_prefix, window, last):
    """Compiled flex_attention on CUDA in bf16 against the float64 dense reference (bounded by the dense bf16
    reference's error), and the attention_ops entry point dispatches to it."""
    out, _ = _window_case(n_prefix, 300, window, last, device="cuda", dtype=torch.bfloat16, compiled=True)
    q, k, v = _qkv(n_prefix + 300, "cuda", torch.bfloat16)
    mask = prefix_window_mask(n_prefix, 300, window, "cuda")
    assert_bf16_like_dense(out, q, k, v, mask, "flex_sliding_window")
    p, t = slice(0, n_prefix), slice(n_prefix, None)
    kp, vp = (k[:, :, p], v[:, :, p]) if n_prefix else (None, None)
    assert flex_ops.use_flex(q)
    via_ops = sliding_window_attention(q[:, :, -last:], k[:, :, t], v[:, :, t], window, kp, vp)
    assert not flex_ops._FAILED, flex_ops._FAILED
    assert_bf16_like_dense(via_ops, q, k, v, mask, "sliding_window_attention")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_flex_segment_bf16():
    n_prefix, length = 16, 256
    q, k, v = _qkv(n_prefix + 2 * length, "cuda", torch.bfloat16)
    qs = q[:, :, :length]
    p, h, s = slice(0, n_prefix), slice(n_prefix, n_prefix + length), slice(n_prefix + length, None)
    out = segment_attention(qs, k[:, :, p], v[:, :, p], k[:, :, h], v[:, :, h], k[:, :, s], v[:, :, s])
    assert not flex_ops._FAILED, flex_ops._FAILED
    assert_bf16_like_dense(out, qs, k, v, mac_segment_mask(n_prefix, length, "cuda"), "segment_attention")
