"""Named groups of a model's parameters, for gradient-norm diagnostics (training logs, scripts/memory_grad_norm.py).

A group says which part of the architecture a parameter belongs to, whatever the variant:
    memory_gates        the gate projections of the LMM (theta, eta, alpha: eqs. 13-14)
    memory_projections  q/k/v projection and convolution, output gate and projection of the LMM
    memory_state        its learned initial weights M_0 and the memory MLP's LayerNorm scale/shift
    attention           W_Q, W_K, W_V, W_O of every attention (MAC, MAG, MAL and the baselines)
    mlps                the SwiGLU MLPs of the blocks
    embeddings          token embeddings, LM head, persistent memory tokens
    norms               every other normalisation weight
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

GROUPS = ("memory_gates", "memory_projections", "memory_state", "attention", "mlps", "embeddings", "norms")


def parameter_group(name: str) -> str:
    """The group of a parameter named as ``model.named_parameters()`` names it."""
    parts = name.split(".")
    if ".memory." in f".{name}." and "memory" in parts[:-1]:
        leaf = parts[parts.index("memory") + 1]
        if leaf == "gates":
            return "memory_gates"
        if leaf in ("init_weights", "ln_weight", "ln_bias"):
            return "memory_state"
        return "memory_projections"
    if "attn" in parts:
        return "attention"
    if "mlp" in parts:
        return "mlps"
    if parts[-1] == "persistent" or "embed" in parts or parts[0] == "lm_head":
        return "embeddings"
    return "norms"


def group_grad_norms(named_parameters: Iterable[tuple[str, nn.Parameter]]) -> dict[str, float]:
    """The L2 norm of the current gradients by group (groups without a gradient are left out)."""
    squares: dict[str, torch.Tensor] = {}
    for name, p in named_parameters:
        if p.grad is not None:
            g = parameter_group(name)
            sq = p.grad.detach().double().pow(2).sum()
            squares[g] = squares[g] + sq if g in squares else sq
    return {g: float(v.sqrt()) for g, v in squares.items()}


def total_norm(group_norms: dict[str, float]) -> float:
    """The L2 norm of all gradients from the norms of disjoint groups (as ``group_grad_norms`` returns them)."""
    return math.sqrt(sum(v * v for v in group_norms.values()))


__all__ = ["GROUPS", "parameter_group", "group_grad_norms", "total_norm"]
