"""Token-dependent gates of the memory update (paper eqs. 13-14): theta_t, eta_t, alpha_t.

Parameterisation (the paper leaves it open; docs/design.md, "Gates"):
    theta_t = max_lr * sigmoid(x_t W_theta + b_theta)       inner learning rate, in (0, max_lr)
    eta_t   = sigmoid(x_t W_eta + b_eta)                     momentum (surprise decay), in (0, 1)
    alpha_t = sigmoid(x_t W_alpha + b_alpha)                 forgetting, in (0, 1)
computed from the block input x_t, per head, per memory layer when ``per_layer_gates`` (NeurIPS App. B.3),
alpha optionally per output channel of each layer (``channelwise_alpha``).  The op consumes
``log eta = logsigmoid(.)`` and ``log(1 - alpha) = logsigmoid(-.)`` so products of many gates stay finite.
Biases are initialised so that at zero input the gates equal ``theta_init``, ``eta_init``, ``alpha_init``.
The bias is a separate parameter (not an ``nn.Linear`` bias) so a model-wide Linear re-initialisation
does not reset it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import MemoryConfig


class Gates(NamedTuple):
    """Gate values, layout [B, H, T, n]; ``n`` = 1 (shared by all layers), depth, or the channel count."""

    lr: Tensor  # theta_t
    log_eta: Tensor | None  # log eta_t; None when momentum is off (eta = 0)
    log_decay: Tensor | None  # log(1 - alpha_t); None when forgetting is off (alpha = 0)

    def map(self, fn) -> "Gates":
        return Gates(*(None if t is None else fn(t) for t in self))


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


class MemoryGates(nn.Module):
    def __init__(self, dim: int, cfg: MemoryConfig, layer_shapes: list[tuple[int, int]]):
        super().__init__()
        self.cfg = cfg
        self.num_heads = cfg.num_heads
        per_layer = len(layer_shapes) if cfg.per_layer_gates else 1
        self.n_lr = per_layer
        self.n_eta = per_layer if cfg.momentum else 0
        if not cfg.forget:
            self.n_alpha = 0
        elif cfg.channelwise_alpha:
            self.n_alpha = sum(d_out for _, d_out in layer_shapes) if cfg.per_layer_gates else layer_shapes[-1][1]
        else:
            self.n_alpha = per_layer
        self.n_total = self.n_lr + self.n_eta + self.n_alpha
        self.proj = nn.Linear(dim, cfg.num_heads * self.n_total, bias=False)
        self.bias = nn.Parameter(torch.empty(cfg.num_heads, self.n_total))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.proj.weight, std=0.02)
        cfg = self.cfg
        with torch.no_grad():
            self.bias[:, : self.n_lr] = _logit(cfg.theta_init / cfg.max_lr)
            self.bias[:, self.n_lr : self.n_lr + self.n_eta] = _logit(cfg.eta_init)
            self.bias[:, self.n_lr + self.n_eta :] = _logit(cfg.alpha_init)

    def forward(self, x: Tensor) -> Gates:
        """x [B, T, dim] -> Gates with tensors [B, H, T, n] in float32 (or float64 for float64 input)."""
        b, t, _ = x.shape
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        z = self.proj(x).to(dtype).view(b, t, self.num_heads, self.n_total) + self.bias.to(dtype)
        z = z.transpose(1, 2)
        lr = self.cfg.max_lr * torch.sigmoid(z[..., : self.n_lr])
        log_eta = F.logsigmoid(z[..., self.n_lr : self.n_lr + self.n_eta]) if self.n_eta else None
        log_decay = F.logsigmoid(-z[..., self.n_lr + self.n_eta :]) if self.n_alpha else None
        return Gates(lr, log_eta, log_decay)
