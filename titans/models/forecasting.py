"""Long-horizon forecasters: the Titans paper's "Simba framework with the Mamba module replaced by the neural
memory" (:class:`MemoryForecaster`) and the DLinear baseline (:class:`DLinear`).

Both map ``x [batch, lookback, variates]`` (z-normalised with the training statistics) to
``[batch, horizon, variates]``.

MemoryForecaster (Simba, Patro & Agneeswaran 2024: blocks of a sequence mixer and a channel mixer; here the
sequence mixer is :class:`titans.memory.NeuralMemory`):

    RevIN: each series of the window minus its mean, over its std (undone on the output)
    tokens  "patch":   channel-independent patches (PatchTST): every variate alone, cut into ``patch_len``
                       patches every ``stride`` steps, each patch a token (Linear + learned position)
            "variate": inverted tokens (iTransformer): the whole lookback of one variate is one token
    blocks  x = x + Dropout(LMM(Norm(x)));  x = x + Dropout(ChannelMixer(Norm(x)))
    head    "patch": flatten the patch tokens, Linear -> horizon;  "variate": Linear(d_model -> horizon)
    skip    optional (``linear_skip``): plus Linear(lookback -> horizon) of the normalised window, shared by the
            variates (RLinear), so the blocks learn a correction of a linear forecast

The memory reads the tokens in order (patches: in time order, so the memory is causal in time; variates: in the
file's column order). The channel mixer mixes the embedding channels of each token: Simba's EinFFT
(``mixer="einfft"``: FFT over channels, block-diagonal complex MLP, inverse FFT) or a GELU MLP (``"mlp"``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from titans.layers import RMSNorm
from titans.memory import MemoryConfig, NeuralMemory


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al. 2022): per window and variate, over the time axis."""

    def __init__(self, n_variates: int, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_variates)) if affine else None
        self.bias = nn.Parameter(torch.zeros(n_variates)) if affine else None

    def normalize(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        x = (x - mean) / std
        if self.weight is not None:
            x = x * self.weight + self.bias
        return x, (mean, std)

    def denormalize(self, y: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
        mean, std = stats
        if self.weight is not None:
            y = (y - self.bias) / (self.weight + self.eps * self.eps)
        return y * std + mean


class MLPMixer(nn.Module):
    """Channel mixer: Linear(d -> expansion d), GELU, Dropout, Linear(-> d)."""

    def __init__(self, dim: int, expansion: int = 2, dropout: float = 0.0):
        super().__init__()
        self.up, self.down = nn.Linear(dim, expansion * dim), nn.Linear(expansion * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(F.gelu(self.up(x))))


class EinFFT(nn.Module):
    """Simba's channel mixer: FFT over the channels, two block-diagonal complex linear maps with a ReLU between
    (on the real and imaginary parts), soft-shrinkage of small coefficients, inverse FFT."""

    def __init__(self, dim: int, num_blocks: int = 4, sparsity_threshold: float = 0.01, scale: float = 0.02):
        super().__init__()
        if dim % num_blocks:
            raise ValueError(f"EinFFT: dim={dim} must be divisible by num_blocks={num_blocks}")
        self.num_blocks, self.block = num_blocks, dim // num_blocks
        self.threshold = sparsity_threshold
        shape = (2, num_blocks, self.block, self.block)
        self.w1 = nn.Parameter(scale * torch.randn(shape))
        self.w2 = nn.Parameter(scale * torch.randn(shape))
        self.b1 = nn.Parameter(scale * torch.randn(2, num_blocks, self.block))
        self.b2 = nn.Parameter(scale * torch.randn(2, num_blocks, self.block))

    @staticmethod
    def _complex_linear(re: Tensor, im: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        out_re = torch.einsum("...ki,kio->...ko", re, w[0]) - torch.einsum("...ki,kio->...ko", im, w[1]) + b[0]
        out_im = torch.einsum("...ki,kio->...ko", im, w[0]) + torch.einsum("...ki,kio->...ko", re, w[1]) + b[1]
        return out_re, out_im

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        spec = torch.fft.fft(x.float(), dim=-1, norm="ortho").reshape(*shape[:-1], self.num_blocks, self.block)
        re, im = self._complex_linear(spec.real, spec.imag, self.w1, self.b1)
        re, im = self._complex_linear(F.relu(re), F.relu(im), self.w2, self.b2)
        spec = torch.complex(F.softshrink(re, self.threshold), F.softshrink(im, self.threshold))
        return torch.fft.ifft(spec.reshape(shape), dim=-1, norm="ortho").real.to(x.dtype)


class SimbaBlock(nn.Module):
    """Pre-norm residual block: the neural memory over the tokens, then the channel mixer over each token."""

    def __init__(self, dim: int, memory: MemoryConfig, mixer: str = "mlp", mixer_expansion: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.memory = NeuralMemory(dim, memory)
        if mixer == "mlp":
            self.mixer = MLPMixer(dim, mixer_expansion, dropout)
        elif mixer == "einfft":
            self.mixer = EinFFT(dim)
        else:
            raise ValueError(f"mixer must be 'mlp' or 'einfft', got {mixer!r}")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.memory(self.norm1(x))[0])
        return x + self.dropout(self.mixer(self.norm2(x)))


def patch_count(lookback: int, patch_len: int, stride: int) -> int:
    """Patches of a lookback padded at its end by ``stride`` copies of its last value (PatchTST)."""
    if patch_len > lookback + stride:
        raise ValueError(f"patch_len={patch_len} is longer than lookback + stride = {lookback + stride}")
    return (lookback + stride - patch_len) // stride + 1


class MemoryForecaster(nn.Module):
    """Simba-style forecaster with the Titans neural memory as its sequence mixer (see the module docstring).

    Args:
        n_variates, lookback, horizon: from the data (the data module's ``net_inputs``).
        tokens: "patch" (channel-independent patches) or "variate" (one token per variate).
        d_model, n_layers: width and number of blocks. patch_len, stride: patching (tokens="patch").
        memory: :class:`titans.memory.MemoryConfig` fields (or a MemoryConfig).
        mixer: "mlp" or "einfft"; mixer_expansion: hidden width of the MLP mixer / d_model.
        dropout: in the blocks; head_dropout: before the head. revin: instance normalisation.
        linear_skip: add a linear forecast of the (normalised) window to the head's output.
    """

    def __init__(self, n_variates: int, lookback: int, horizon: int, tokens: str = "patch", d_model: int = 64,
                 n_layers: int = 2, patch_len: int = 16, stride: int = 8, memory: MemoryConfig | dict | None = None,
                 mixer: str = "mlp", mixer_expansion: int = 2, dropout: float = 0.1, head_dropout: float = 0.0,
                 revin: bool = True, linear_skip: bool = False):
        super().__init__()
        if tokens not in ("patch", "variate"):
            raise ValueError(f"tokens must be 'patch' or 'variate', got {tokens!r}")
        memory = memory if isinstance(memory, MemoryConfig) else MemoryConfig(**{"num_heads": 4, **dict(memory or {})})
        self.n_variates, self.lookback, self.horizon, self.tokens = n_variates, lookback, horizon, tokens
        self.revin = RevIN(n_variates) if revin else None
        if tokens == "patch":
            self.patch_len, self.stride = patch_len, stride
            self.n_tokens = patch_count(lookback, patch_len, stride)
            self.embed = nn.Linear(patch_len, d_model)
            self.position = nn.Parameter(torch.empty(self.n_tokens, d_model))
            nn.init.uniform_(self.position, -0.02, 0.02)
            self.head = nn.Linear(self.n_tokens * d_model, horizon)
        else:
            self.n_tokens = n_variates
            self.embed = nn.Linear(lookback, d_model)
            self.position = None
            self.head = nn.Linear(d_model, horizon)
        self.blocks = nn.ModuleList(SimbaBlock(d_model, memory, mixer, mixer_expansion, dropout)
                                    for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.head_dropout = nn.Dropout(head_dropout)
        self.skip = nn.Linear(lookback, horizon) if linear_skip else None

    def _tokens(self, x: Tensor) -> Tensor:
        """[B, L, C] -> tokens [B * C, n_patches, d] (patch) or [B, C, d] (variate)."""
        series = x.transpose(1, 2)  # [B, C, L]
        if self.tokens == "variate":
            return self.embed(series)
        series = torch.cat([series, series[..., -1:].expand(*series.shape[:2], self.stride)], dim=-1)
        patches = series.unfold(-1, self.patch_len, self.stride)  # [B, C, N, patch_len]
        return (self.embed(patches) + self.position).flatten(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.lookback or x.shape[2] != self.n_variates:
            raise ValueError(f"expected x of shape [batch, {self.lookback}, {self.n_variates}], got {tuple(x.shape)}")
        B = x.shape[0]
        stats = None
        if self.revin is not None:
            x, stats = self.revin.normalize(x)
        h = self._tokens(x)
        for block in self.blocks:
            h = block(h)
        h = self.head_dropout(self.norm(h))
        if self.tokens == "patch":
            y = self.head(h.flatten(1)).view(B, self.n_variates, self.horizon)
        else:
            y = self.head(h)
        if self.skip is not None:
            y = y + self.skip(x.transpose(1, 2))
        y = y.transpose(1, 2)  # [B, horizon, C]
        return self.revin.denormalize(y, stats) if self.revin is not None else y


class MovingAverage(nn.Module):
    """Centred moving average over time with the ends padded by repeating the first / last value."""

    def __init__(self, kernel: int):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"moving-average kernel must be odd and >= 1, got {kernel}")
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:  # [B, L, C]
        pad = (self.kernel - 1) // 2
        padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        return F.avg_pool1d(padded.transpose(1, 2), self.kernel, stride=1).transpose(1, 2)


class DLinear(nn.Module):
    """DLinear (Zeng et al. 2023): the window split into a moving-average trend and the remainder, each mapped to
    the horizon by one Linear over time, shared by all variates (``individual=False``) or one per variate."""

    def __init__(self, n_variates: int, lookback: int, horizon: int, kernel: int = 25, individual: bool = False,
                 revin: bool = False):
        super().__init__()
        self.n_variates, self.lookback, self.horizon = n_variates, lookback, horizon
        self.decompose = MovingAverage(kernel)
        self.individual = individual
        n = n_variates if individual else 1
        self.seasonal = nn.Parameter(torch.full((n, horizon, lookback), 1.0 / lookback))
        self.trend = nn.Parameter(torch.full((n, horizon, lookback), 1.0 / lookback))
        bound = 1.0 / math.sqrt(lookback)
        self.seasonal_bias = nn.Parameter(torch.empty(n, horizon).uniform_(-bound, bound))
        self.trend_bias = nn.Parameter(torch.empty(n, horizon).uniform_(-bound, bound))
        self.revin = RevIN(n_variates, affine=False) if revin else None

    def forward(self, x: Tensor) -> Tensor:
        stats = None
        if self.revin is not None:
            x, stats = self.revin.normalize(x)
        trend = self.decompose(x)
        seasonal = x - trend  # [B, L, C]
        y = (torch.einsum("blc,chl->bhc", seasonal, self.seasonal.expand(self.n_variates, -1, -1))
             + torch.einsum("blc,chl->bhc", trend, self.trend.expand(self.n_variates, -1, -1))
             + (self.seasonal_bias + self.trend_bias).t())
        return self.revin.denormalize(y, stats) if self.revin is not None else y


__all__ = ["DLinear", "EinFFT", "MemoryForecaster", "MLPMixer", "MovingAverage", "RevIN", "SimbaBlock",
           "patch_count"]
