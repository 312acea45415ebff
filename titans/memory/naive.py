"""Slow, obvious reference of the chunked memory rule (same signature as ``chunked.chunked_memory``).

A loop over tokens that materialises the weights after every token:
    u_t = grad_M l(M_{t'}; k_t, v_t)          (t' = last token of the previous chunk, eq. 16)
    S_t = eta_t S_{t-1} - theta_t u_t          (eq. 14 / 18)
    M_t = (1 - alpha_t) M_{t-1} + S_t          (eq. 13)
    y_t = M_t(q_t)                             (write-then-read)
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import mlp


def naive_memory(q: Tensor, k: Tensor, v: Tensor, lr: list[Tensor], log_eta: list[Tensor] | None,
                 log_decay: list[Tensor] | None, weights: list[Tensor], momentum: list[Tensor] | None, *,
                 chunk_size: int, activation: str, ln_weight: Tensor | None = None, ln_bias: Tensor | None = None,
                 ln_eps: float = 1e-5, commit_partial: bool = False, decay_target=None):
    N, T, _ = k.shape
    depth = len(weights)
    W = list(weights)
    S = list(momentum) if momentum is not None else [torch.zeros_like(w) for w in W]
    W_start, S_start = list(W), list(S)
    ys = []
    for t in range(T):
        if t % chunk_size == 0:
            W_start, S_start = list(W), list(S)
            W_chunk = list(W)
        inputs, deltas, _ = mlp.memory_grad_factors(W_chunk, k[:, t : t + 1], v[:, t : t + 1], activation,
                                                    ln_weight, ln_bias, ln_eps)
        for layer in range(depth):
            grad = inputs[layer][:, 0, :, None] * deltas[layer][:, 0, None, :]
            eta = torch.exp(log_eta[layer][:, t]) if log_eta is not None else torch.zeros_like(lr[layer][:, t])
            keep = torch.exp(log_decay[layer][:, t]) if log_decay is not None else torch.ones_like(lr[layer][:, t])
            S[layer] = eta[:, :, None] * S[layer] - lr[layer][:, t, :, None] * grad
            W[layer] = keep[:, None, :] * W[layer] + S[layer]
            if decay_target is not None:
                W[layer] = W[layer] + (1 - keep[:, None, :]) * decay_target[layer]
        ys.append(mlp.memory_forward(W, q[:, t : t + 1], activation, ln_weight, ln_bias, ln_eps))
    y = torch.cat(ys, dim=1) if ys else q[:, :0]
    if T % chunk_size and not commit_partial:
        W, S = W_start, S_start
    return y, W, (S if momentum is not None else None)
