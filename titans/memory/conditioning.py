"""How well-conditioned the memory stays over a long sequence (docs/design.md, "Conditioning of the memory").

Forgetting multiplies the weights by (1 - alpha_t) every token; a deep memory's output LayerNorm makes its inner
loss blind to their scale, so with eq. 13 as printed (``decay_target="zero"``) the weights shrink without bound
and every read and inner gradient grows more sensitive (1 / std before the LayerNorm rises), until the outer
gradient explodes. :func:`memory_trajectory` streams a sequence through one memory layer in pieces and records,
after each piece, what shows it: the weight norm of each memory layer relative to M_0 and the LayerNorm's 1 / std
on the next keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from . import mlp
from .layer import NeuralMemory


@dataclass
class Trajectory:
    """Per piece of the stream: ``positions`` (tokens seen), ``weight_ratio[l]`` (mean over samples and heads of
    ||W_l|| / ||M_0,l||) and ``ln_rstd`` (mean 1 / std of the pre-LayerNorm activations of the next piece's keys
    under the current weights; empty for a matrix memory) and ``initial_ln_rstd`` (the same under M_0)."""

    positions: list[int] = field(default_factory=list)
    weight_ratio: list[list[float]] = field(default_factory=list)
    ln_rstd: list[float] = field(default_factory=list)
    initial_ln_rstd: float = 0.0  # the same at M_0, on the first piece's keys (before any write)

    def min_weight_ratio(self) -> float:
        return min(min(r) for r in self.weight_ratio)

    def max_ln_rstd(self) -> float:
        return max(self.ln_rstd) if self.ln_rstd else 0.0


@torch.no_grad()
def memory_trajectory(memory: NeuralMemory, x: Tensor, piece: int = 256) -> Trajectory:
    """Stream ``x`` [B, T, dim] through ``memory`` ``piece`` tokens at a time (the state carried, as one call would)
    and record the conditioning after each piece."""
    out = Trajectory()
    state = memory.init_state(x.shape[0], x.device)
    ref = [w.detach().flatten(1).norm(dim=1) for w in memory.init_weights]  # [H] per layer
    T = x.shape[1]
    if memory.depth > 1:
        out.initial_ln_rstd = _ln_rstd(memory, memory.current_weights(state), x[:, :piece])
    for start in range(0, T, piece):
        _, state = memory(x[:, start:start + piece], state)
        out.positions.append(min(T, start + piece))
        W = memory.current_weights(state)
        out.weight_ratio.append([float((w.flatten(2).norm(dim=2) / r.to(w.dtype).clamp_min(1e-12)).mean())
                                 for w, r in zip(W, ref)])
        if memory.depth > 1 and start + piece < T:
            out.ln_rstd.append(_ln_rstd(memory, W, x[:, start + piece:start + 2 * piece]))
    return out


def _ln_rstd(memory: NeuralMemory, W: list[Tensor], x: Tensor) -> float:
    """Mean 1 / std of the pre-LayerNorm activations of the keys of ``x`` under the weights ``W``."""
    _, k, _, _, _ = memory.project(x, None)
    B, H, n, D = k.shape
    h = k.reshape(B * H, n, D)
    weights = [w.reshape(B * H, *w.shape[2:]).to(h.dtype) for w in W]
    sigma, _ = mlp.activation(memory.cfg.activation)
    for i, w in enumerate(weights):
        h = h @ w
        if i < len(weights) - 1:
            h = sigma(h)
    return float(torch.rsqrt(h.var(-1, unbiased=False) + memory.cfg.ln_eps).mean())


__all__ = ["Trajectory", "memory_trajectory"]
