"""NeuralMemory: the Titans long-term memory layer (paper section 3.1, eqs. 8-18, and section 4.4).

    q, k, v = SiLU(causal depthwise conv(Linear(x)));  q, k L2-normalised per head      (section 4.4)
    gates theta_t, eta_t, alpha_t from x_t                                               (gates.py)
    per head: S_t = eta_t S_{t-1} - theta_t grad l(M_{t'}; k_t, v_t),
              M_t = (1 - alpha_t) M_{t-1} + S_t,   y_t = M_t(q_t)                         (eqs. 13-16)
    out = o_proj(RMSNorm(y) * SiLU(Linear(x)))
Memory math runs in float32 (float64 for a float64 module) even under autocast.
"""

from __future__ import annotations

import functools
import math
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import mlp
from .chunked import chunked_memory
from .config import MemoryConfig
from .dispatch import memory_scan
from .gates import Gates, MemoryGates
from .state import MemoryState, ReadState


def _no_autocast(device_type: str):
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return nullcontext()


class NeuralMemory(nn.Module):
    """The memory layer over inputs of width ``dim``, configured by a :class:`MemoryConfig`."""

    def __init__(self, dim: int, cfg: MemoryConfig):
        super().__init__()
        # or a MemoryConfig of another copy of this module: transformers loads the remote code of a saved model
        # (titans.models.remote_code) once for the config and once for the model
        if not (isinstance(cfg, MemoryConfig) or type(cfg).__name__ == MemoryConfig.__name__):
            raise TypeError(f"NeuralMemory takes a MemoryConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.dim = dim
        self.num_heads = H = cfg.num_heads
        self.head_dim = D = cfg.resolve_head_dim(dim)
        self.inner_dim = H * D
        self.layer_shapes = cfg.layer_shapes(D)
        self.depth = cfg.depth

        self.qkv_proj = nn.Linear(dim, 3 * H * D, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(3 * H * D, 1, cfg.conv_kernel)) if cfg.use_conv else None
        self.gates = MemoryGates(dim, cfg, self.layer_shapes)
        # learned initial memory weights M_0, one set per head
        self.init_weights = nn.ParameterList([nn.Parameter(torch.empty(H, di, do)) for di, do in self.layer_shapes])
        if cfg.depth > 1:
            self.ln_weight = nn.Parameter(torch.ones(H, D))
            self.ln_bias = nn.Parameter(torch.zeros(H, D))
        else:
            self.register_parameter("ln_weight", None)
            self.register_parameter("ln_bias", None)
        self.out_norm_weight = nn.Parameter(torch.ones(D))
        self.gate_proj = nn.Linear(dim, H * D, bias=False)
        self.o_proj = nn.Linear(H * D, dim, bias=False)
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """M_0: zeros for a matrix memory (DeltaNet convention); for a deep memory, N(0, 1) for the first
        layer when keys are unit-norm (so pre-activations are O(1)) else N(0, 1/d_in), and N(0, 1/d_in)
        after it.  Conv: nn.Conv1d's default.  Gates: see gates.py."""
        if self.conv_weight is not None:
            nn.init.kaiming_uniform_(self.conv_weight, a=math.sqrt(5))
        for i, w in enumerate(self.init_weights):
            if self.depth == 1:
                nn.init.zeros_(w)
            else:
                std = 1.0 if (i == 0 and self.cfg.qk_l2norm) else 1.0 / math.sqrt(w.shape[1])
                nn.init.normal_(w, std=std)
        if self.ln_weight is not None:
            nn.init.ones_(self.ln_weight)
            nn.init.zeros_(self.ln_bias)
        nn.init.ones_(self.out_norm_weight)
        self.gates.reset_parameters()

    def _compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.init_weights[0].dtype == torch.float64 else torch.float32

    # ------------------------------------------------------------------ state
    def init_state(self, batch_size: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> MemoryState:
        """Fresh state: M = M_0 (learned, differentiable), S = 0, empty chunk buffer, zero conv cache."""
        cfg, H, D = self.cfg, self.num_heads, self.head_dim
        device = self.init_weights[0].device if device is None else torch.device(device)
        dtype = self._compute_dtype() if dtype is None else dtype
        B = batch_size
        weights = [w.to(device=device, dtype=dtype).unsqueeze(0).expand(B, *w.shape) for w in self.init_weights]
        momentum = [torch.zeros(B, H, di, do, device=device, dtype=dtype) for di, do in self.layer_shapes] \
            if cfg.momentum else []
        g = self.gates

        def empty(n):
            return torch.zeros(B, H, 0, n, device=device, dtype=dtype)

        conv = cfg.use_conv and cfg.conv_kernel > 1
        return MemoryState(
            weights=weights, momentum=momentum, buf_k=empty(D), buf_v=empty(D), buf_lr=empty(g.n_lr),
            buf_log_eta=empty(g.n_eta) if g.n_eta else None,
            buf_log_decay=empty(g.n_alpha) if g.n_alpha else None,
            conv_cache=torch.zeros(B, cfg.conv_kernel - 1, 3 * H * D, device=device, dtype=dtype) if conv else None,
        )

    def _check_input(self, x: Tensor, state_batch_size: int | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"NeuralMemory expects x of shape [batch, seq, {self.dim}], got {tuple(x.shape)}")
        if state_batch_size is not None and state_batch_size != x.shape[0]:
            raise ValueError(f"state has batch size {state_batch_size} but x has {x.shape[0]}; "
                             "reorder/select the state with state.map(lambda t: t.index_select(0, idx))")

    # ------------------------------------------------------------------ inputs
    def _short_conv(self, u: Tensor, weight: Tensor | None, cache: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Causal depthwise conv over time: u [B, T, C] with the previous kernel-1 inputs in ``cache``."""
        if weight is None or u.shape[1] == 0:
            return u, cache
        if cache is None:  # kernel 1
            return F.conv1d(u.transpose(1, 2), weight.to(u.dtype), groups=u.shape[-1]).transpose(1, 2), None
        full = torch.cat([cache.to(u.dtype), u], dim=1)
        y = F.conv1d(full.transpose(1, 2), weight.to(u.dtype), groups=u.shape[-1]).transpose(1, 2)
        return y, full[:, full.shape[1] - cache.shape[1]:]

    def _heads(self, u: Tensor, normalize: bool) -> Tensor:
        """[B, T, H*D] -> SiLU, optional per-head L2 norm -> [B, H, T, D] in the compute dtype."""
        B, T, _ = u.shape
        u = F.silu(u).view(B, T, self.num_heads, self.head_dim).transpose(1, 2).to(self._compute_dtype())
        return F.normalize(u, dim=-1, eps=1e-6) if normalize else u

    def project(self, x: Tensor, conv_cache: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Gates, Tensor | None]:
        """q, k, v [B, H, T, D] (float32), the gates, and the new conv cache."""
        u, conv_cache = self._short_conv(self.qkv_proj(x), self.conv_weight, conv_cache)
        q, k, v = u.split(self.inner_dim, dim=-1)
        l2 = self.cfg.qk_l2norm
        return self._heads(q, l2), self._heads(k, l2), self._heads(v, False), self.gates(x), conv_cache

    def project_query(self, x: Tensor, conv_cache: Tensor | None) -> tuple[Tensor, Tensor | None]:
        w = self.qkv_proj.weight[: self.inner_dim]
        cw = None if self.conv_weight is None else self.conv_weight[: self.inner_dim]
        u, conv_cache = self._short_conv(F.linear(x, w), cw, conv_cache)
        return self._heads(u, self.cfg.qk_l2norm), conv_cache

    # ------------------------------------------------------------------ memory core
    def _per_layer(self, g: Tensor | None, channelwise: bool = False) -> list[Tensor] | None:
        """[N, T, n] gate tensor -> one [N, T, C_l] tensor per memory layer."""
        if g is None:
            return None
        if g.shape[-1] == 1 or (channelwise and not self.cfg.per_layer_gates):
            return [g] * self.depth
        if channelwise:
            return list(g.split([do for _, do in self.layer_shapes], dim=-1))
        return [g[..., i : i + 1] for i in range(self.depth)]

    def _ln_params(self, B: int, dtype: torch.dtype):
        if self.ln_weight is None:
            return None, None
        H, D = self.num_heads, self.head_dim
        lw = self.ln_weight.to(dtype).unsqueeze(0).expand(B, H, D).reshape(B * H, 1, D)
        lb = self.ln_bias.to(dtype).unsqueeze(0).expand(B, H, D).reshape(B * H, 1, D)
        return lw, lb

    def _run(self, q: Tensor, k: Tensor, v: Tensor, gates: Gates, state: MemoryState,
             commit_partial: bool = False):
        """Core on [B, H, T, *] tensors that already include the buffered tokens."""
        B, H, T, D = k.shape
        N = B * H
        dt = self._compute_dtype()

        def flat(t):
            return None if t is None else t.to(dt).reshape(N, T, t.shape[-1])

        weights = [w.to(dt).reshape(N, *w.shape[2:]) for w in state.weights]
        momentum = [s.to(dt).reshape(N, *s.shape[2:]) for s in state.momentum] if self.cfg.momentum else None
        lw, lb = self._ln_params(B, dt)
        backend = {"triton": "triton", "fused_cpu": "fused_cpu"}.get(self.cfg.impl, "auto")
        op = chunked_memory if self.cfg.impl == "autograd" else functools.partial(
            memory_scan, compile=self.cfg.compile, backend=backend)
        # forgetting toward M_0 (docs/design.md, "Conditioning"): the learned initial weights, per sample and head
        target = None
        if self.cfg.forget and self.cfg.decay_target == "init":
            target = [w.to(dt).unsqueeze(0).expand(B, *w.shape).reshape(N, *w.shape[1:]) for w in self.init_weights]
        y, W, S = op(
            flat(q), flat(k), flat(v), self._per_layer(flat(gates.lr)), self._per_layer(flat(gates.log_eta)),
            self._per_layer(flat(gates.log_decay), channelwise=self.cfg.channelwise_alpha), weights, momentum,
            chunk_size=self.cfg.chunk_size, activation=self.cfg.activation, ln_weight=lw, ln_bias=lb,
            ln_eps=self.cfg.ln_eps, commit_partial=commit_partial, checkpoint_group=self.cfg.checkpoint_group,
            decay_target=target)
        W = [w.view(B, H, *w.shape[1:]) for w in W]
        S = [s.view(B, H, *s.shape[1:]) for s in S] if S is not None else []
        return y.view(B, H, T, D), W, S

    def memorize(self, q: Tensor, k: Tensor, v: Tensor, gates: Gates, state: MemoryState,
                 conv_cache: Tensor | None) -> tuple[Tensor, MemoryState]:
        """Write-then-read on projected inputs [B, H, T, D]: y_t = M_t(q_t); returns y and the new state (which
        carries ``conv_cache``, the projection's conv cache after these inputs)."""
        n = state.chunk_pos
        dt = self._compute_dtype()
        with _no_autocast(k.device.type):
            q, k, v = q.to(dt), k.to(dt), v.to(dt)
            gates = gates.map(lambda t: t.to(dt))
            if n:
                q = torch.cat([q.new_zeros(*q.shape[:2], n, q.shape[-1]), q], dim=2)
                k = torch.cat([state.buf_k.to(dt), k], dim=2)
                v = torch.cat([state.buf_v.to(dt), v], dim=2)
                gates = Gates(*(None if g is None else torch.cat([bg.to(dt), g], dim=2) for bg, g in
                                zip((state.buf_lr, state.buf_log_eta, state.buf_log_decay), gates)))
            y, W, S = self._run(q, k, v, gates, state)
            total = k.shape[2]
            keep = total % self.cfg.chunk_size
            start = total - keep
            new_state = MemoryState(
                weights=W, momentum=S, buf_k=k[:, :, start:], buf_v=v[:, :, start:],
                buf_lr=gates.lr[:, :, start:],
                buf_log_eta=None if gates.log_eta is None else gates.log_eta[:, :, start:],
                buf_log_decay=None if gates.log_decay is None else gates.log_decay[:, :, start:],
                conv_cache=conv_cache)
            return y[:, :, n:], new_state

    def current_weights(self, state: MemoryState) -> list[Tensor]:
        """M after every token seen so far ([B, H, d_in, d_out] per layer), finishing the partial chunk."""
        if state.chunk_pos == 0:
            return state.weights
        with _no_autocast(state.buf_k.device.type):
            gates = Gates(state.buf_lr, state.buf_log_eta, state.buf_log_decay)
            _, W, _ = self._run(torch.zeros_like(state.buf_k), state.buf_k, state.buf_v, gates, state,
                                commit_partial=True)
        return W

    # ------------------------------------------------------------------ output path
    def output(self, y: Tensor, x: Tensor) -> Tensor:
        """o_proj(RMSNorm(y) * SiLU(Linear(x))); y [B, H, T, D] -> [B, T, dim]."""
        B, H, T, D = y.shape
        with _no_autocast(y.device.type):
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.cfg.norm_eps) * self.out_norm_weight.to(y.dtype)
        y = y.transpose(1, 2).reshape(B, T, H * D)
        gate = F.silu(self.gate_proj(x))
        y = y.to(gate.dtype) * gate
        return self.o_proj(y)

    # ------------------------------------------------------------------ public API
    def forward(self, x: Tensor, state: MemoryState | None = None) -> tuple[Tensor, MemoryState]:
        """x [B, T, dim] -> (y [B, T, dim], new state).  Write-then-read: y_t = M_t(q_t)."""
        self._check_input(x, None if state is None else state.batch_size)
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        q, k, v, gates, conv_cache = self.project(x, state.conv_cache)
        y, new_state = self.memorize(q, k, v, gates, state, conv_cache)
        return self.output(y, x), new_state

    def read_state(self, state: MemoryState, previous: ReadState | None = None) -> ReadState:
        """What :meth:`retrieve` reads: the memory after every token of ``state`` (the partial chunk finished) and
        the query conv cache of ``previous`` (the read stream continues; None = a fresh stream)."""
        if previous is not None:
            conv_cache = previous.conv_cache
        elif self.conv_weight is not None and self.cfg.conv_kernel > 1:
            conv_cache = state.buf_k.new_zeros(state.batch_size, self.cfg.conv_kernel - 1, self.inner_dim)
        else:
            conv_cache = None
        return ReadState(weights=self.current_weights(state), conv_cache=conv_cache)

    def retrieve(self, x: Tensor, read: ReadState) -> tuple[Tensor, ReadState]:
        """MAC read (paper eq. 21): h_t = M*(q_t) with the memory of ``read`` (no update of M or S), through the
        memory's output stage (RMSNorm, SiLU gate, output projection) like every read. Returns ([B, T, dim], the
        read state after x: same weights, the query conv cache moved on)."""
        self._check_input(x, read.weights[0].shape[0])
        q, conv_cache = self.project_query(x, read.conv_cache)
        B, H, T, D = q.shape
        dt = self._compute_dtype()
        with _no_autocast(x.device.type):
            W = [w.to(dt).reshape(B * H, *w.shape[2:]) for w in read.weights]
            lw, lb = self._ln_params(B, dt)
            h = mlp.memory_forward(W, q.to(dt).reshape(B * H, T, D), self.cfg.activation, lw, lb, self.cfg.ln_eps)
        return self.output(h.view(B, H, T, D), x), ReadState(weights=read.weights, conv_cache=conv_cache)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"dim={self.dim}, heads={c.num_heads}, head_dim={self.head_dim}, depth={c.depth}, "
                f"chunk={c.chunk_size}, momentum={c.momentum}, forget={c.forget}")
