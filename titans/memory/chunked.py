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
    """Coefficients that carry the state from the chunk start to relative token e (inclusive):
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


class _LayerCoefs:
    """Per-chunk coefficients of one memory layer (shared between layers that share gates)."""

    def __init__(self, lr: Tensor, log_eta: Tensor | None, log_decay: Tensor | None, last_valid: int):
        # inputs: [nc, N, b, 1] (lr, log_eta) and [nc, N, b, C] (log_decay); last_valid: tokens in the last chunk
        self.channelwise = log_decay is not None and log_decay.shape[-1] > 1
        lr = lr[..., 0]  # [nc, N, b]
        b = lr.shape[-1]
        cum_e = log_eta[..., 0].cumsum(-1) if log_eta is not None else None  # [nc, N, b]
        cum_a = log_decay.cumsum(-2) if log_decay is not None else None  # [nc, N, b, C]
        if cum_e is not None:
            E = torch.exp(cum_e)
            P_lr = ratio_matrix(cum_e.unsqueeze(-1))[..., 0] * lr.unsqueeze(-2)  # (E_s/E_i) theta_i  [nc, N, s, i]
        else:
            E = P_lr = None
        # all chunks stacked ([nc, N, t, *]) for work done before the loop, and unbound per chunk
        self.A_all = torch.exp(cum_a) if cum_a is not None else None  # [nc, N, b, C]
        self.A = self.A_all.unbind(0) if cum_a is not None else None
        # read coefficients B [N, t, C] and D [N, t, i] (channel-wise: built per chunk in ``read_coefs``)
        self.B = self.D = self.B_all = self.D_all = None
        if not self.channelwise:
            ones = torch.ones(b, b, dtype=lr.dtype, device=lr.device).tril()
            Q = ratio_matrix(cum_a)[..., 0] if cum_a is not None else ones  # (A_t / A_s), s <= t
            if P_lr is not None:
                self.D_all = Q @ P_lr
                self.B_all = Q @ E.unsqueeze(-1)
                self.B = self.B_all.unbind(0)
            else:
                self.D_all = Q * lr.unsqueeze(-2)
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
    N, T, d = k.shape
    depth = len(weights)
    if T == 0:
        return q.new_zeros(N, 0, q.shape[-1]), list(weights), None if momentum is None else list(momentum)
    b = chunk_size
    nc, pad, chunks = chunk_layout(N, T, b)
    sigma, _ = mlp.activation(activation)

    coef_cache: dict[tuple, _LayerCoefs] = {}
    coefs = []
    for layer in range(depth):
        key = (id(lr[layer]), id(log_eta[layer]) if log_eta else None, id(log_decay[layer]) if log_decay else None)
        if key not in coef_cache:
            coef_cache[key] = _LayerCoefs(chunks(lr[layer]), chunks(log_eta[layer]) if log_eta else None,
                                          chunks(log_decay[layer]) if log_decay else None, b - pad)
        coefs.append(coef_cache[key])
    distinct = list({id(c): c for c in coefs}.values())

    # Work that does not depend on the memory weights, batched over all chunks before the sequential loop.
    # unbind (not indexing) so that backward stacks the per-chunk gradients once instead of once per chunk.
    kc, qc, vcs = chunks(k), chunks(q), chunks(v)
    first = coefs[0]
    # Scalar gates: the first layer's read  A_t (q_t W) + B_t (q_t S) - sum_i D_ti (q_t . k_i) delta_i
    # folds A and B into the queries, [A q | B q] @ [W; S], and precomputes D * (Q K^T).
    fold = not first.channelwise and decay_target is None
    if fold:
        qa = qc * first.A_all if first.A_all is not None else qc
        if momentum is not None:
            qa = torch.cat([qa, qc * first.B_all], dim=-1)
            kc_in = torch.cat([kc, torch.zeros_like(kc)], dim=-1)
        else:
            kc_in = kc
        dscores0 = (first.D_all * (qc @ kc.transpose(-1, -2))).unbind(0)  # [N, t, i] per chunk
    else:
        qa, kc_in, dscores0 = qc, kc, None
    kq = torch.cat([kc_in, qa], dim=2).unbind(0)  # keys and queries: the first layer reads both with one matmul
    vc = vcs.unbind(0)
    keys = kc.unbind(0)
    # residual parts of the inner error M(k) - v and of the output M(q) (depth >= 2)
    offset = (kc + ln_bias.unsqueeze(0) - vcs).unbind(0) if depth > 1 else None
    q_plus_bias = (qc + ln_bias.unsqueeze(0)).unbind(0) if depth > 1 else None
    qc_list = qc.unbind(0)

    def step(c: int, W: list[Tensor], S: list[Tensor] | None):
        """One chunk: outputs of its tokens and the state at its end."""
        KQ, Kc = kq[c], keys[c]
        first_in = torch.cat([W[0], S[0]], dim=1) if (fold and S is not None) else W[0]
        zk_first, zq_first = (KQ @ first_in).split(b, dim=1)  # split: its backward is one cat
        inputs, deltas, _ = mlp.memory_grad_factors(W, Kc, vc[c], activation, ln_weight, ln_bias, ln_eps,
                                                    first_preact=zk_first, offset=offset[c] if offset else None)
        read = {id(co): co.read_coefs(c) for co in distinct}
        # read: y_t = M_t(q_t), layer by layer (dual form, see module docstring)
        h = qc_list[c]
        for layer in range(depth):
            if layer == 0 and fold:  # A, B already in zq_first; D * scores precomputed
                z = torch.baddbmm(zq_first, dscores0[c], deltas[0], alpha=-1.0)
            else:
                A, B, D = read[id(coefs[layer])]
                z = zq_first if layer == 0 else h @ W[layer]
                if A is not None:
                    if decay_target is not None:
                        z = A * z + (1 - A) * (h @ decay_target[layer])
                    else:
                        z = A * z
                if S is not None:
                    z = torch.addcmul(z, B, h @ S[layer])
                scores = h @ inputs[layer].transpose(-1, -2)  # [N, t, i]
                if D.dim() == 3:
                    z = torch.baddbmm(z, D * scores, deltas[layer], alpha=-1.0)
                else:
                    z = z - torch.einsum("ntic,nti,nic->ntc", D, scores, deltas[layer])
            h = sigma(z) if layer < depth - 1 else z
        if depth == 1:
            y = h
        else:
            n, _ = mlp.layer_norm(h, ln_eps)
            y = torch.addcmul(q_plus_bias[c], ln_weight, n)
        # carry the state to the next chunk (eqs. 13-14 at the chunk's last token)
        partial = c == nc - 1 and pad > 0
        if partial and not commit_partial:
            return y, W, S
        ends = {id(co): co.end_coefs(c, partial) for co in distinct}
        newW, newS = [], []
        for layer in range(depth):
            A_e, B_e, d_e, m_e, E_e = ends[id(coefs[layer])]
            hT = inputs[layer].transpose(-1, -2)
            delta = deltas[layer]
            d_out = delta.shape[-1]
            if S is not None:  # (d_e, m_e negated) upd = -H^T (d_e * Delta), -H^T (m_e * Delta)
                upd_w, upd_s = (hT @ torch.cat([d_e * delta, m_e * delta], dim=-1)).split(d_out, dim=-1)
                w = upd_w + W[layer] if A_e is None else torch.addcmul(upd_w, A_e, W[layer])
                newW.append(torch.addcmul(w, B_e, S[layer]))
                newS.append(torch.addcmul(upd_s, E_e, S[layer]))
            else:
                w = W[layer] if A_e is None else A_e * W[layer]
                newW.append(torch.baddbmm(w, hT, d_e * delta))
            if decay_target is not None and A_e is not None:
                newW[-1] = newW[-1] + (1 - A_e) * decay_target[layer]
        return y, newW, (newS if S is not None else None)

    def run_group(c0: int, c1: int, *state: Tensor):
        W, S = list(state[:depth]), (list(state[depth:]) if momentum is not None else None)
        ys = []
        for c in range(c0, c1):
            y, W, S = step(c, W, S)
            ys.append(y)
        return (torch.cat(ys, dim=1) if len(ys) > 1 else ys[0], *W, *(S or []))

    state = (*weights, *(momentum or []))
    group = checkpoint_group if (checkpoint_group > 0 and torch.is_grad_enabled()) else nc
    outs = []
    for c0 in range(0, nc, group):
        c1 = min(nc, c0 + group)
        if group < nc:
            res = torch.utils.checkpoint.checkpoint(run_group, c0, c1, *state, use_reentrant=False)
        else:
            res = run_group(c0, c1, *state)
        outs.append(res[0])
        state = res[1:]
    W = list(state[:depth])
    S = list(state[depth:]) if momentum is not None else None
    y = torch.cat(outs, dim=1)[:, :T] if len(outs) > 1 else outs[0][:, :T]
    return y, W, S
