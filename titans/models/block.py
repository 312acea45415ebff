"""The Llama-style macro block shared by every variant: pre-norm, residuals, SwiGLU MLP."""
from torch import nn

from titans.layers import RMSNorm, SwiGLU

from .cache import MixerState
from .config import TitansConfig
from .variants import SeqContext, build_mixer


class Block(nn.Module):
    """x = x + mixer(RMSNorm(x)); x = x + SwiGLU(RMSNorm(x))."""

    def __init__(self, cfg: TitansConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.mixer_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mixer = build_mixer(kind, cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_dim)

    def forward(self, x, ctx: SeqContext, state: MixerState | None) -> tuple:
        """(block output, the mixer's new state); ``state`` None starts a sequence (see titans.models.variants.base)."""
        y, state = self.mixer(self.mixer_norm(x), ctx, state)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state
