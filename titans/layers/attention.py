"""Multi-head attention with RoPE and a KV cache: full causal (Transformer++) or sliding window
with an always-visible persistent prefix (SWA, MAG, MAL). MAC's per-segment attention reuses the
projections of this module (see titans.models.variants.mac)."""
import torch
from torch import nn

from .attention_ops import causal_attention, sliding_window_attention
from .kv_cache import KVCache
from .rope import apply_rope, rope_cos_sin


class Attention(nn.Module):
    """Causal self-attention over ``[persistent prefix | tokens]``.

    ``window=None``: full causal attention (the prefix is just the first positions).
    ``window=w``: token t sees the prefix and tokens t-w+1..t (blockwise kernel, linear memory).
    """

    def __init__(self, dim: int, n_heads: int, rope_theta: float = 10000.0, window: int | None = None):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"d_model={dim} is not divisible by n_heads={n_heads}")
        if window is not None and window < 1:
            raise ValueError(f"attention window must be >= 1 or None, got {window}")
        self.n_heads, self.head_dim, self.window, self.rope_theta = n_heads, dim // n_heads, window, rope_theta
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def new_cache(self) -> KVCache:
        return KVCache(max_tokens=self.window)

    # -- projections ---------------------------------------------------------------------------
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype):
        return rope_cos_sin(positions, self.head_dim, self.rope_theta, dtype)

    def project_q(self, x, cos, sin):
        return apply_rope(self._heads(self.wq(x)), cos, sin)

    def project_kv(self, x, cos, sin):
        return apply_rope(self._heads(self.wk(x)), cos, sin), self._heads(self.wv(x))

    @staticmethod
    def merge_heads(o: torch.Tensor) -> torch.Tensor:
        b, h, t, d = o.shape
        return o.transpose(1, 2).reshape(b, t, h * d)

    # -- attention -----------------------------------------------------------------------------
    def core(self, x: torch.Tensor, positions: torch.Tensor, n_prefix: int,
             cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Attention output before the output projection, [B, T, dim], and the cache after x.

        x holds ``n_prefix`` persistent positions first (only on the first call of a sequence) followed by tokens;
        ``positions`` are their absolute positions (RoPE). ``cache`` None starts a sequence.
        """
        cache = self.new_cache() if cache is None else cache
        cos, sin = self.rope(positions, x.dtype)
        q = self.project_q(x, cos, sin)
        k, v = self.project_kv(x, cos, sin)
        if self.window is None:
            k, v, cache = cache.extend(k, v)
            return self.merge_heads(causal_attention(q, k, v)), cache

        outs = []
        if n_prefix:
            kp, vp = k[:, :, :n_prefix], v[:, :, :n_prefix]
            outs.append(causal_attention(q[:, :, :n_prefix], kp, vp))
            q, k, v = q[:, :, n_prefix:], k[:, :, n_prefix:], v[:, :, n_prefix:]
            cache = cache.with_prefix(kp, vp)
        if q.shape[2]:
            k, v, cache = cache.extend(k, v)
            outs.append(sliding_window_attention(q, k, v, self.window, cache.k_prefix, cache.v_prefix))
        return self.merge_heads(torch.cat(outs, 2) if len(outs) > 1 else outs[0]), cache

    def forward(self, x, positions, n_prefix: int = 0, cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        y, cache = self.core(x, positions, n_prefix, cache)
        return self.wo(y), cache
