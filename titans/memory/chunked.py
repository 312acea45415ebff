"""The chunked memory op with autograd through every chunk: paper eqs. 13-18 in dual (attention-like) form.

This is the reference that ``memory_scan`` (``dispatch``; the default, with a hand-written backward) is tested against
(``MemoryConfig(impl="autograd")`` selects it); it is itself tested against the token-by-token oracle.

For a chunk with start state (W, S) = (M_{t'}, S_{t'}) and tokens i = 1..b (relative), every inner gradient
is taken at W (eq. 16-17 chunk rule) and is a sum of per-token outer products, u_i = h_i^T delta_i per layer
(h_i: the layer input of key i, delta_i: the backpropagated error, see ``mlp.memory_grad_factors``).
Unrolling the momentum (eq. 18) and decay (eq. 13) recurrences inside the chunk,
    S_t = eta_t S_{t-1} - theta_t u_t,      M_t = (1 - alpha_t) M_{t-1} + S_t,
gives, with E_t = prod_{j<=t} eta_j and A_t = prod_{j<=t} (1 - alpha_j),
    M_t = A_t W + B_t S - sum_{i<=t} D_ti u_i,     S_t = E_t S - sum_{i<=t} (E_t/E_i) theta_i u_i,
    B_t = sum_{s<=t} (A_t/A_s) E_s,                 D_ti = theta_i sum_{s=i..t} (A_t/A_s)(E_s/E_i).
So the read of a token t (write-then-read, y_t = M_t(q_t)) needs no per-token weights: for the layer input
x_t of the query (the query itself for layer 1, the activation computed under M_t for deeper layers),
    x_t M_t = A_t (x_t W) + B_t (x_t S) - sum_{i<=t} D_ti (x_t . h_i) delta_i,
i.e. two matmuls with the chunk-start state and one masked ``(D * X H^T) @ Delta`` attention-like product.
The decay/momentum ratios are built from cumulative sums of log gates (cumulative-product masks).
Chunks run in sequence; the end-of-chunk (M, S) is the next chunk's start state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import Tensor

from . import mlp


def ratio_matrix(cum: Tensor) -> Tensor:
    """R[..., t, s] = exp(cum[t] - cum[s]) for s <= t, else 0.  cum: [..., b, C] -> [..., b, b, C]."""
    b = cum.shape[-2]
    diff = cum.unsqueeze(-2) - cum.unsqueeze(-3)  # [..., t, s, C]
    upper = torch.ones(b, b, dtype=torch.bool, device=cum.device).triu(1).unsqueeze(-1)
    return torch.exp(diff.masked_fill(upper, float("-inf")))


def _end_coefs(cum_a: Tensor | None, cum_e: Tensor | None, P_lr: Tensor | None, lr: Tensor, e: int):
    """Coefficients that carry the state from the chunk start to relative token e (inclusive; eqs. 13-14):
        M_e = A_e * W + B_e * S - H^T (d_e * Delta),      S_e = E_e * S - H^T (m_e * Delta)
    (d_e and m_e are returned negated).
    cum_a [..., b, C] | None, cum_e [..., b] | None, P_lr [..., s, i] | None, lr [..., b].
    Returns A_e [..., 1, C] | None, B_e [..., 1, C] | None, d_e [..., b, C], m_e [..., b, 1] | None, E_e [..., 1, 1]."""
    b = lr.shape[-1]
    valid = (torch.arange(b, device=lr.device) <= e).to(lr.dtype).unsqueeze(-1)  # [b, 1]
    if cum_a is not None:
        A_e = torch.exp(cum_a[..., e : e + 1, :])
        # (A_e / A_s) for s <= e, else 0; the clamp keeps exp finite where the mask zeroes it anyway
        q_row = torch.exp((cum_a[..., e : e + 1, :] - cum_a).clamp(max=0.0)) * valid  # [..., s, C]
    else:
        A_e = None
        q_row = valid.expand(*lr.shape, 1)
    if P_lr is None:
        return A_e, None, -(q_row * lr.unsqueeze(-1)), None, None
    d_e = torch.einsum("...sc,...si->...ic", q_row, P_lr)
    E = torch.exp(cum_e)
    B_e = (q_row * E.unsqueeze(-1)).sum(-2, keepdim=True)
    m_e = P_lr[..., e, :].unsqueeze(-1)
    E_e = E[..., e].unsqueeze(-1).unsqueeze(-1)
    return A_e, B_e, -d_e, -m_e, E_e  # negated d, m: the update adds H^T (-d * Delta) without extra ops


def _momentum_carry(cum_e: Tensor | None, lr: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """Momentum (eq. 14) unrolled inside a chunk (eq. 18): E_s = prod_{j<=s} eta_j and the weight of token i's
    surprise in S_s, P[s, i] = (E_s / E_i) theta_i for i <= s.
    cum_e [..., b] (cumulative log eta) | None, lr [..., b]. Returns (E [..., b], P [..., s, i]), or Nones."""
    if cum_e is None:
        return None, None
    E = torch.exp(cum_e)
    P_lr = ratio_matrix(cum_e.unsqueeze(-1))[..., 0] * lr.unsqueeze(-2)  # (E_s/E_i) theta_i  [..., s, i]
    return E, P_lr


def _scalar_read_coefs(cum_a: Tensor | None, E: Tensor | None, P_lr: Tensor | None,
                       lr: Tensor) -> tuple[Tensor | None, Tensor]:
    """Read coefficients of scalar gates (module docstring; forgetting eq. 13 and momentum eq. 14 unrolled):
        B_t = sum_{s<=t} (A_t/A_s) E_s,      D_ti = sum_{s<=t} (A_t/A_s) P_si   (D_ti = (A_t/A_i) theta_i if eta = 0).
    cum_a [..., b, 1] | None. Returns (B [..., t, 1] | None, D [..., t, i])."""
    b = lr.shape[-1]
    ones = torch.ones(b, b, dtype=lr.dtype, device=lr.device).tril()
    Q = ratio_matrix(cum_a)[..., 0] if cum_a is not None else ones  # (A_t / A_s), s <= t
    if P_lr is None:
        return None, Q * lr.unsqueeze(-2)
    D = Q @ P_lr
    B = Q @ E.unsqueeze(-1)
    return B, D


class _LayerCoefs:
    """Per-chunk coefficients of one memory layer (shared between layers that share gates)."""

    def __init__(self, lr: Tensor, log_eta: Tensor | None, log_decay: Tensor | None, last_valid: int):
        # inputs: [nc, N, b, 1] (lr, log_eta) and [nc, N, b, C] (log_decay); last_valid: tokens in the last chunk
        self.channelwise = log_decay is not None and log_decay.shape[-1] > 1
        lr = lr[..., 0]  # [nc, N, b]
        b = lr.shape[-1]
        cum_e = log_eta[..., 0].cumsum(-1) if log_eta is not None else None  # [nc, N, b]
        cum_a = log_decay.cumsum(-2) if log_decay is not None else None  # [nc, N, b, C]
        E, P_lr = _momentum_carry(cum_e, lr)
        # all chunks stacked ([nc, N, t, *]) for work done before the loop, and unbound per chunk
        self.A_all = torch.exp(cum_a) if cum_a is not None else None  # [nc, N, b, C]
        self.A = self.A_all.unbind(0) if cum_a is not None else None
        # read coefficients B [N, t, C] and D [N, t, i] (channel-wise: built per chunk in ``read_coefs``)
        self.B = self.D = self.B_all = self.D_all = None
        if not self.channelwise:
            self.B_all, self.D_all = _scalar_read_coefs(cum_a, E, P_lr, lr)
            self.B = self.B_all.unbind(0) if self.B_all is not None else None
            self.D = self.D_all.unbind(0)
        else:
            self._cum_a = cum_a.unbind(0)
            self._P_lr = P_lr.unbind(0) if P_lr is not None else None
            self._E = E.unbind(0) if E is not None else None
            self._lr = lr.unbind(0)
        # end-of-chunk coefficients for all chunks at once, and for the true last token of a partial last chunk
        self.end = [None if t is None else t.unbind(0) for t in _end_coefs(cum_a, cum_e, P_lr, lr, b - 1)]
        self.end_partial = None
        if last_valid < b:
            last = (None if t is None else t[-1] for t in (cum_a, cum_e, P_lr, lr))
            self.end_partial = _end_coefs(*last, last_valid - 1)

    def read_coefs(self, c: int) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """A [N, t, C] | None, B [N, t, C] | None, D [N, t, i] (scalar gates) or [N, t, i, C] (channel-wise)."""
        A = self.A[c] if self.A is not None else None
        if not self.channelwise:
            return A, (self.B[c] if self.B is not None else None), self.D[c]
        Q = ratio_matrix(self._cum_a[c])  # [N, t, s, C]
        if self._P_lr is not None:
            D = torch.einsum("ntsc,nsi->ntic", Q, self._P_lr[c])
            B = torch.einsum("ntsc,ns->ntc", Q, self._E[c])
            return A, B, D
        return A, None, Q * self._lr[c][:, None, :, None]

    def end_coefs(self, c: int, partial: bool):
        if partial:
            return self.end_partial
        return tuple(None if t is None else t[c] for t in self.end)


def chunk_layout(N: int, T: int, b: int):
    """(number of chunks, padding of the last chunk, chunks) with chunks: [N, T, C] -> [nc, N, b, C] (zero-padded)."""
    nc = -(-T // b)
    pad = nc * b - T

    def chunks(x: Tensor) -> Tensor:
        if pad:
            x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        return x.view(N, nc, b, x.shape[-1]).transpose(0, 1)

    return nc, pad, chunks


def _layer_coefs(lr: list[Tensor], log_eta: list[Tensor] | None, log_decay: list[Tensor] | None, chunks,
                 depth: int, last_valid: int) -> list[_LayerCoefs]:
    """The gates' coefficients per memory layer: forgetting (eq. 13) and momentum (eq. 14) unrolled over each
    chunk (section 3.2, eqs. 16-18). Built once for layers that share their gate tensors, which then hold the
    same ``_LayerCoefs``."""
    cache: dict[tuple, _LayerCoefs] = {}
    coefs = []
    for layer in range(depth):
        key = (id(lr[layer]), id(log_eta[layer]) if log_eta else None, id(log_decay[layer]) if log_decay else None)
        if key not in cache:
            cache[key] = _LayerCoefs(chunks(lr[layer]), chunks(log_eta[layer]) if log_eta else None,
                                     chunks(log_decay[layer]) if log_decay else None, last_valid)
        coefs.append(cache[key])
    return coefs


def _fold_first_read(qc: Tensor, kc: Tensor, first: _LayerCoefs, with_momentum: bool):
    """The first layer's read with scalar gates, y_t = M_t(q_t) (eq. 15) in dual form,
        A_t (q_t W) + B_t (q_t S) - sum_{i<=t} D_ti (q_t . k_i) delta_i,
    prepared for all chunks: A and B folded into the queries, [A q | B q] @ [W; S], keys padded to the same
    width, and the state-independent D * (Q K^T). Returns (queries, keys, D * (Q K^T) per chunk)."""
    qa = qc * first.A_all if first.A_all is not None else qc
    if with_momentum:
        qa = torch.cat([qa, qc * first.B_all], dim=-1)
        kc_in = torch.cat([kc, torch.zeros_like(kc)], dim=-1)
    else:
        kc_in = kc
    dscores0 = (first.D_all * (qc @ kc.transpose(-1, -2))).unbind(0)  # [N, t, i] per chunk
    return qa, kc_in, dscores0


@dataclass(frozen=True)
class _ChunkLoop:
    """What each chunk step reads: the settings, the gate coefficients of every layer, and the inputs that do
    not depend on the memory state, computed for all chunks before the loop and unbound per chunk (unbind, not
    indexing, so that backward stacks the per-chunk gradients once instead of once per chunk)."""

    depth: int
    chunk_size: int
    n_chunks: int
    pad: int  # padding of the last chunk
    commit_partial: bool
    with_momentum: bool
    activation: str
    ln_weight: Tensor | None
    ln_bias: Tensor | None
    ln_eps: float
    decay_target: list[Tensor] | None
    coefs: list[_LayerCoefs]  # per layer (the same object for layers that share gates)
    distinct: list[_LayerCoefs]
    fold: bool  # the first layer's read is folded into kq and dscores0 (``_fold_first_read``)
    kq: tuple[Tensor, ...]  # [K; Q] rows: the first layer reads keys and queries with one matmul
    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    queries: tuple[Tensor, ...]
    dscores0: tuple[Tensor, ...] | None
    offset: tuple[Tensor, ...] | None  # K + beta - V: the residual part of the inner error M(k) - v (depth >= 2)
    q_plus_bias: tuple[Tensor, ...] | None  # Q + beta: the residual part of the output M(q) (depth >= 2)


def _chunk_loop(q: Tensor, k: Tensor, v: Tensor, lr: list[Tensor], log_eta: list[Tensor] | None,
                log_decay: list[Tensor] | None, *, depth: int, with_momentum: bool, chunk_size: int,
                activation: str, ln_weight: Tensor | None, ln_bias: Tensor | None, ln_eps: float,
                commit_partial: bool, decay_target: list[Tensor] | None) -> _ChunkLoop:
    """The work that does not depend on the memory weights, batched over all chunks before the sequential loop."""
    N, T, _ = k.shape
    b = chunk_size
    nc, pad, chunks = chunk_layout(N, T, b)
    coefs = _layer_coefs(lr, log_eta, log_decay, chunks, depth, b - pad)
    kc, qc, vcs = chunks(k), chunks(q), chunks(v)
    fold = not coefs[0].channelwise and decay_target is None
    qa, kc_in, dscores0 = _fold_first_read(qc, kc, coefs[0], with_momentum) if fold else (qc, kc, None)
    kq = torch.cat([kc_in, qa], dim=2).unbind(0)
    values = vcs.unbind(0)
    keys = kc.unbind(0)
    offset = (kc + ln_bias.unsqueeze(0) - vcs).unbind(0) if depth > 1 else None
    q_plus_bias = (qc + ln_bias.unsqueeze(0)).unbind(0) if depth > 1 else None
    queries = qc.unbind(0)
    return _ChunkLoop(depth=depth, chunk_size=b, n_chunks=nc, pad=pad, commit_partial=commit_partial,
                      with_momentum=with_momentum, activation=activation, ln_weight=ln_weight, ln_bias=ln_bias,
                      ln_eps=ln_eps, decay_target=decay_target, coefs=coefs,
                      distinct=list({id(c): c for c in coefs}.values()), fold=fold, kq=kq, keys=keys,
                      values=values, queries=queries, dscores0=dscores0, offset=offset, q_plus_bias=q_plus_bias)


def chunk_surprise(loop: _ChunkLoop, c: int, W: list[Tensor], S: list[Tensor] | None):
    """The surprise of every token of chunk c: the gradient of the associative loss ||M(k_i) - v_i||^2 (eq. 12),
    all taken at the chunk-start weights (eqs. 16-17), as per-layer outer-product factors u_i = h_i^T delta_i
    (``mlp.memory_grad_factors``). The keys' first-layer matmul also reads the queries.
    Returns (inputs h, deltas, the queries' first-layer product: Q W_0, or [A Q | B Q] [W_0; S_0] when folded)."""
    first_in = torch.cat([W[0], S[0]], dim=1) if (loop.fold and S is not None) else W[0]
    zk_first, zq_first = (loop.kq[c] @ first_in).split(loop.chunk_size, dim=1)  # split: its backward is one cat
    offset = loop.offset[c] if loop.offset is not None else None
    inputs, deltas, _ = mlp.memory_grad_factors(W, loop.keys[c], loop.values[c], loop.activation, loop.ln_weight,
                                                loop.ln_bias, loop.ln_eps, first_preact=zk_first, offset=offset)
    return inputs, deltas, zq_first


def _read_layer(loop: _ChunkLoop, layer: int, h: Tensor, W: list[Tensor], S: list[Tensor] | None,
                zq_first: Tensor, inputs: list[Tensor], deltas: list[Tensor], coefs) -> Tensor:
    """Pre-activation of one memory layer under each token's own weights M_t, in dual form (module docstring):
    forgetting (eq. 13) and momentum (eq. 14) unrolled from the chunk start,
        x_t M_t = A_t (x_t W) + B_t (x_t S) - sum_{i<=t} D_ti (x_t . h_i) delta_i,
    with A_t (x_t W) + (1 - A_t) (x_t T) when forgetting decays toward a target T. ``coefs``: (A, B, D)."""
    A, B, D = coefs
    z = zq_first if layer == 0 else h @ W[layer]
    if A is not None:
        if loop.decay_target is not None:
            z = A * z + (1 - A) * (h @ loop.decay_target[layer])
        else:
            z = A * z
    if S is not None:
        z = torch.addcmul(z, B, h @ S[layer])
    scores = h @ inputs[layer].transpose(-1, -2)  # [N, t, i]
    if D.dim() == 3:
        return torch.baddbmm(z, D * scores, deltas[layer], alpha=-1.0)
    return z - torch.einsum("ntic,nti,nic->ntc", D, scores, deltas[layer])


def _memory_output(loop: _ChunkLoop, c: int, h: Tensor) -> Tensor:
    """A deep memory's output from its last layer's pre-activation h: M(q) = q + beta + gamma LN(h)."""
    n, _ = mlp.layer_norm(h, loop.ln_eps)
    return torch.addcmul(loop.q_plus_bias[c], loop.ln_weight, n)


def chunk_retrieve(loop: _ChunkLoop, c: int, W: list[Tensor], S: list[Tensor] | None, zq_first: Tensor,
                   inputs: list[Tensor], deltas: list[Tensor]) -> Tensor:
    """Retrieval y_t = M_t(q_t) (eq. 15) for the tokens of chunk c, write-then-read: each token reads the
    weights after its own update, layer by layer, without materializing them (``_read_layer``)."""
    sigma, _ = mlp.activation(loop.activation)
    coefs = {id(co): co.read_coefs(c) for co in loop.distinct}
    h = loop.queries[c]
    for layer in range(loop.depth):
        if layer == 0 and loop.fold:  # A, B already in zq_first; D * scores precomputed
            z = torch.baddbmm(zq_first, loop.dscores0[c], deltas[0], alpha=-1.0)
        else:
            z = _read_layer(loop, layer, h, W, S, zq_first, inputs, deltas, coefs[id(loop.coefs[layer])])
        h = sigma(z) if layer < loop.depth - 1 else z
    return h if loop.depth == 1 else _memory_output(loop, c, h)


def _carry_layer(W: Tensor, S: Tensor | None, h: Tensor, delta: Tensor, end, target: Tensor | None):
    """One layer's state at the chunk's last token e, from its chunk-start state (W, S) and the chunk's surprise
    factors (H, Delta): momentum S_e = E_e S - H^T (m_e * Delta) (eq. 14) and forgetting
    M_e = A_e W + B_e S - H^T (d_e * Delta) (eq. 13), plus (1 - A_e) T with a decay target T.
    ``end``: ``_end_coefs`` (d_e, m_e negated). Returns (M_e, S_e) (S_e None without momentum)."""
    A_e, B_e, d_e, m_e, E_e = end
    hT = h.transpose(-1, -2)
    if S is not None:  # (d_e, m_e negated) upd = -H^T (d_e * Delta), -H^T (m_e * Delta)
        upd_w, upd_s = (hT @ torch.cat([d_e * delta, m_e * delta], dim=-1)).split(delta.shape[-1], dim=-1)
        w = upd_w + W if A_e is None else torch.addcmul(upd_w, A_e, W)
        new_w, new_s = torch.addcmul(w, B_e, S), torch.addcmul(upd_s, E_e, S)
    else:
        w = W if A_e is None else A_e * W
        new_w, new_s = torch.baddbmm(w, hT, d_e * delta), None
    if target is not None and A_e is not None:
        new_w = new_w + (1 - A_e) * target
    return new_w, new_s


def chunk_end_state(loop: _ChunkLoop, c: int, W: list[Tensor], S: list[Tensor] | None, inputs: list[Tensor],
                    deltas: list[Tensor], partial: bool) -> tuple[list[Tensor], list[Tensor] | None]:
    """The state carried to the next chunk: eqs. 13-14 at chunk c's last token (its last real token when
    ``partial``), every layer (``_carry_layer``)."""
    ends = {id(co): co.end_coefs(c, partial) for co in loop.distinct}
    new_w, new_s = [], []
    for layer in range(loop.depth):
        target = loop.decay_target[layer] if loop.decay_target is not None else None
        w, s = _carry_layer(W[layer], S[layer] if S is not None else None, inputs[layer], deltas[layer],
                            ends[id(loop.coefs[layer])], target)
        new_w.append(w)
        new_s.append(s)
    return new_w, (new_s if S is not None else None)


def chunk_step(loop: _ChunkLoop, c: int, W: list[Tensor], S: list[Tensor] | None):
    """One chunk: the surprise at its start state (eq. 12), the outputs of its tokens (eq. 15) and the state at
    its end (eqs. 13-14; the start state for a partial last chunk that does not commit). Returns (y, W, S)."""
    inputs, deltas, zq_first = chunk_surprise(loop, c, W, S)
    y = chunk_retrieve(loop, c, W, S, zq_first, inputs, deltas)
    partial = c == loop.n_chunks - 1 and loop.pad > 0
    if partial and not loop.commit_partial:
        return y, W, S
    return (y, *chunk_end_state(loop, c, W, S, inputs, deltas, partial))


def run_chunks(loop: _ChunkLoop, c0: int, c1: int, *state: Tensor) -> tuple[Tensor, ...]:
    """Chunks c0..c1-1 in sequence from ``state`` = (*weights, *momentum): (their outputs y, *the end state)."""
    depth = loop.depth
    W, S = list(state[:depth]), (list(state[depth:]) if loop.with_momentum else None)
    ys = []
    for c in range(c0, c1):
        y, W, S = chunk_step(loop, c, W, S)
        ys.append(y)
    return (torch.cat(ys, dim=1) if len(ys) > 1 else ys[0], *W, *(S or []))


def _run_groups(loop: _ChunkLoop, state: tuple[Tensor, ...], checkpoint_group: int):
    """All chunks, in groups of ``checkpoint_group`` chunks under activation checkpointing (one group when 0 or
    with grad disabled). Returns (the outputs of each group, the final state)."""
    nc = loop.n_chunks
    group = checkpoint_group if (checkpoint_group > 0 and torch.is_grad_enabled()) else nc
    outs = []
    for c0 in range(0, nc, group):
        c1 = min(nc, c0 + group)
        if group < nc:
            res = torch.utils.checkpoint.checkpoint(run_chunks, loop, c0, c1, *state, use_reentrant=False)
        else:
            res = run_chunks(loop, c0, c1, *state)
        outs.append(res[0])
        state = res[1:]
    return outs, state


def chunked_memory(q: Tensor, k: Tensor, v: Tensor, lr: list[Tensor], log_eta: list[Tensor] | None,
                   log_decay: list[Tensor] | None, weights: list[Tensor], momentum: list[Tensor] | None, *,
                   chunk_size: int, activation: str, ln_weight: Tensor | None = None, ln_bias: Tensor | None = None,
                   ln_eps: float = 1e-5, commit_partial: bool = False, checkpoint_group: int = 0,
                   decay_target: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
    """Write-then-read memory over a sequence that starts at a chunk boundary.

    q, k, v: [N, T, d]; lr / log_eta / log_decay: one tensor per memory layer, [N, T, 1] (or [N, T, C_l] for a
    channel-wise decay; the same tensor object may be repeated when layers share gates); weights / momentum:
    chunk-start state per layer, [N, d_in, d_out]; momentum is None when eta = 0.
    Returns (y [N, T, d] with y_t = M_t(q_t), weights, momentum): the state at the start of the last, partial
    chunk (== after all tokens when T is a multiple of chunk_size), or after all T tokens if commit_partial.
    checkpoint_group > 0 (with grad enabled): activation checkpointing over groups of that many chunks; only the
    state at group boundaries is kept for backward and each group is recomputed (same values and gradients).
    """
    N, T, _ = k.shape
    depth = len(weights)
    if T == 0:
        return q.new_zeros(N, 0, q.shape[-1]), list(weights), None if momentum is None else list(momentum)
    loop = _chunk_loop(q, k, v, lr, log_eta, log_decay, depth=depth, with_momentum=momentum is not None,
                       chunk_size=chunk_size, activation=activation, ln_weight=ln_weight, ln_bias=ln_bias,
                       ln_eps=ln_eps, commit_partial=commit_partial, decay_target=decay_target)
    outs, state = _run_groups(loop, (*weights, *(momentum or [])), checkpoint_group)
    W = list(state[:depth])
    S = list(state[depth:]) if momentum is not None else None
    y = torch.cat(outs, dim=1)[:, :T] if len(outs) > 1 else outs[0][:, :T]
    return y, W, S
