"""The memory network M, written functionally so that its weights can be per-sample state.

Row-vector convention: a layer maps ``h -> h @ W`` with ``W`` of shape ``[d_in, d_out]``; all functions
take a leading batch axis ``N`` (= batch * heads) so every head of every sample has its own weights.

Depth 1 (a matrix, linear memory)::  M(x) = x @ W_1
Depth L >= 2 (NeurIPS section 3.3, generalised)::
    h_0 = x,  z_l = h_{l-1} @ W_l,  h_l = sigma(z_l)  (l < L),
    M(x) = x + gamma * LN(z_L) + beta
LN normalises over the last axis and has no inner-loop parameters; ``gamma``/``beta`` (per head) are
outer-loop parameters that the inner loop does not update.  The LN is part of the inner loss, so its
backward is part of the inner gradient.

Inner loss (paper eq. 12): ``l(M; k, v) = ||M(k) - v||_2^2`` summed over the head's channels (no 1/2,
no mean), so dl/dM(k) = 2 (M(k) - v).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_GRAD_SCALE = 2.0  # d/dy ||y - v||^2 = 2 (y - v)


def _silu_backward(g: Tensor, z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return g * s * (1.0 + z * (1.0 - s))


def activation(name: str):
    """(sigma, sigma_backward) for the memory MLP: ``sigma_backward(g, z) = g * sigma'(z)``.

    The backward is ATen's own fused kernel (one op instead of the ~8 of a written-out derivative);
    it is twice differentiable, which the outer (training) gradient needs."""
    if name == "gelu":
        return F.gelu, torch.ops.aten.gelu_backward
    if name == "silu":  # ATen's silu_backward has no derivative of its own: written out (sigma' = s (1 + z (1 - s)))
        return F.silu, _silu_backward
    if name == "relu":
        return F.relu, lambda g, z: g * (z > 0).to(g.dtype)
    if name == "tanh":
        return torch.tanh, lambda g, z: g * (1.0 - torch.tanh(z) ** 2)
    raise ValueError(f"unknown memory activation {name!r}")


def layer_norm(z: Tensor, eps: float) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Parameter-free LayerNorm over the last axis; returns (normalised, saved) for ``layer_norm_backward``."""
    n, mean, rstd = torch.native_layer_norm(z, z.shape[-1:], None, None, eps)
    return n, (z, mean, rstd)


def layer_norm_backward(grad_n: Tensor, saved: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """d loss / d z for n = LN(z), given d loss / d n:
    rstd * (g - mean(g) - n * mean(g * n))  (ATen's fused, twice-differentiable kernel)."""
    z, mean, rstd = saved
    return torch.ops.aten.native_layer_norm_backward(grad_n, z, z.shape[-1:], mean, rstd, None, None,
                                                     [True, False, False])[0]


def memory_forward(weights: list[Tensor], x: Tensor, act_name: str, ln_weight: Tensor | None,
                   ln_bias: Tensor | None, eps: float) -> Tensor:
    """M(x) for x [N, T, d] with per-row-of-N weights [N, d_in, d_out] (read only)."""
    if len(weights) == 1:
        return x @ weights[0]
    sigma, _ = activation(act_name)
    h = x
    for i, w in enumerate(weights):
        z = h @ w
        h = sigma(z) if i < len(weights) - 1 else z
    n, _ = layer_norm(h, eps)
    return x + ln_weight * n + ln_bias


def memory_grad_factors(weights: list[Tensor], k: Tensor, v: Tensor, act_name: str, ln_weight: Tensor | None,
                        ln_bias: Tensor | None, eps: float, first_preact: Tensor | None = None,
                        offset: Tensor | None = None) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Per-token inner gradients of l(M; k_t, v_t) = ||M(k_t) - v_t||^2 as outer-product factors.

    Returns (inputs, deltas, preacts): the gradient for layer l and token t is
    ``inputs[l][:, t, :, None] * deltas[l][:, t, None, :]`` (shape [d_in, d_out]); ``preacts[l]`` is z_l
    (kept for callers that need sigma'(z)).  All tokens are evaluated at the same ``weights``.
    ``first_preact`` = k @ weights[0] and ``offset`` = k + ln_bias - v when the caller already has them
    (the residual part of M(k) - v, which does not depend on the weights).
    """
    sigma, sigma_backward = activation(act_name)
    depth = len(weights)
    inputs, preacts = [], []
    h = k
    for i, w in enumerate(weights):
        inputs.append(h)
        z = first_preact if (i == 0 and first_preact is not None) else h @ w
        preacts.append(z)
        h = sigma(z) if i < depth - 1 else z
    if depth == 1:
        deltas = [LOSS_GRAD_SCALE * (h - v)]
        return inputs, deltas, preacts
    n, saved = layer_norm(h, eps)
    if offset is None:
        offset = k + ln_bias - v
    # d loss / d n = 2 (M(k) - v) * gamma, with M(k) - v = gamma * n + offset
    delta = layer_norm_backward(torch.addcmul(offset, ln_weight, n) * (LOSS_GRAD_SCALE * ln_weight), saved)
    deltas = [delta]
    for i in range(depth - 1, 0, -1):
        delta = sigma_backward(delta @ weights[i].transpose(-1, -2), preacts[i - 1])
        deltas.append(delta)
    deltas.reverse()
    return inputs, deltas, preacts


def inner_loss(weights: list[Tensor], k: Tensor, v: Tensor, act_name: str, ln_weight: Tensor | None,
               ln_bias: Tensor | None, eps: float) -> Tensor:
    """Per-token inner loss ||M(k_t) - v_t||^2, shape [N, T]."""
    return (memory_forward(weights, k, act_name, ln_weight, ln_bias, eps) - v).pow(2).sum(-1)
