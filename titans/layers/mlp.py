"""SwiGLU feed-forward block (Shazeer 2020), as in Llama."""
import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """down(SiLU(gate(x)) * up(x)); no biases."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        if hidden_dim <= 0:
            raise ValueError(f"SwiGLU hidden_dim must be positive, got {hidden_dim}; raise ffn_dim / ffn_mult")
        self.gate = nn.Linear(dim, hidden_dim, bias=False)
        self.up = nn.Linear(dim, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))
