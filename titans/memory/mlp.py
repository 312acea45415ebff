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

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_GRAD_SCALE = 2.0  # d/dy ||y - v||^2 = 2 (y - v)


def activation(name: str):
    """(sigma, sigma') for the memory MLP."""
    if name == "gelu":
        inv_sqrt2 = 1.0 / math.sqrt(2.0)
        inv_sqrt2pi = 1.0 / math.sqrt(2.0 * math.pi)

        def d_gelu(z: Tensor) -> Tensor:
            return 0.5 * (1.0 + torch.erf(z * inv_sqrt2)) + z * torch.exp(-0.5 * z * z) * inv_sqrt2pi

        return F.gelu, d_gelu
    if name == "silu":
        def d_silu(z: Tensor) -> Tensor:
            s = torch.sigmoid(z)
            return s * (1.0 + z * (1.0 - s))

        return F.silu, d_silu
    if name == "relu":
        return F.relu, lambda z: (z > 0).to(z.dtype)
    if name == "tanh":
        return torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2
    raise ValueError(f"unknown memory activation {name!r}")


def layer_norm(z: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Parameter-free LayerNorm over the last axis; returns (normalised, 1/std)."""
    mu = z.mean(-1, keepdim=True)
    zc = z - mu
    rstd = torch.rsqrt((zc * zc).mean(-1, keepdim=True) + eps)
    return zc * rstd, rstd


def layer_norm_backward(grad_n: Tensor, n: Tensor, rstd: Tensor) -> Tensor:
    """d loss / d z for n = LN(z), given d loss / d n."""
    return rstd * (grad_n - grad_n.mean(-1, keepdim=True) - n * (grad_n * n).mean(-1, keepdim=True))


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
                        ln_bias: Tensor | None, eps: float, first_preact: Tensor | None = None
                        ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Per-token inner gradients of l(M; k_t, v_t) = ||M(k_t) - v_t||^2 as outer-product factors.

    Returns (inputs, deltas, preacts): the gradient for layer l and token t is
    ``inputs[l][:, t, :, None] * deltas[l][:, t, None, :]`` (shape [d_in, d_out]); ``preacts[l]`` is z_l
    (kept for callers that need sigma'(z)).  All tokens are evaluated at the same ``weights``.
    ``first_preact`` = k @ weights[0] when the caller already has it.
    """
    sigma, d_sigma = activation(act_name)
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
    n, rstd = layer_norm(h, eps)
    out = k + ln_weight * n + ln_bias
    grad_out = LOSS_GRAD_SCALE * (out - v)
    delta = layer_norm_backward(grad_out * ln_weight, n, rstd)
    deltas = [delta]
    for i in range(depth - 1, 0, -1):
        delta = (delta @ weights[i].transpose(-1, -2)) * d_sigma(preacts[i - 1])
        deltas.append(delta)
    deltas.reverse()
    return inputs, deltas, preacts


def inner_loss(weights: list[Tensor], k: Tensor, v: Tensor, act_name: str, ln_weight: Tensor | None,
               ln_bias: Tensor | None, eps: float) -> Tensor:
    """Per-token inner loss ||M(k_t) - v_t||^2, shape [N, T]."""
    return (memory_forward(weights, k, act_name, ln_weight, ln_bias, eps) - v).pow(2).sum(-1)
