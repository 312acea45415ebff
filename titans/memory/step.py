"""One chunk of the memory recurrence and its hand-derived vector-Jacobian product (for ``scan.MemoryScan``).

Notation (one chunk of b tokens, all gradients taken at the chunk-start state, paper eqs. 16-17; row vectors,
leading axis N = batch x heads). Memory layers l = 0..L-1 with weights W_l [d_in, d_out] and momentum S_l, kept
side by side as one tensor per layer, ``WS_l = [W_l | S_l]`` of shape [N, d_in, 2 d_out] (just W_l without
momentum), so that one matmul reads both and the state is never concatenated inside the loop.

Inner gradient (``inner``), at the chunk-start weights:
    h_0 = K,  z_l = h_l W_l,  h_{l+1} = sigma(z_l)                                  (l < L-1)
    depth 1:  delta_0 = 2 (z_0 - V)
    depth L:  n = LN(z_{L-1}),  r = gamma n + off  (off = K + beta - V, so r = M(K) - V),  g = 2 gamma r,
              delta_{L-1} = LN'(z_{L-1})^T g,  p_l = delta_{l+1} W_{l+1}^T,  delta_l = sigma'(z_l) p_l
    the gradient of layer l summed over the chunk is u_l = h_l^T delta_l.
    The rows kq = [K; Q] times WS_0 give K W_0 and, for the read, c_0 = Q W_0 and e_0 = Q S_0 in one matmul.
Read (``read``), write-then-read y_t = M_t(q_t) in dual form (see ``chunked``):
    x_0 = Q,  a_l = A_l c_l + B_l e_l - (D_l * (x_l h_l^T)) delta_l,  [c_l | e_l] = x_l WS_l,
    x_{l+1} = sigma(a_l);   y = a_0 (depth 1)  or  y = Q + beta + gamma LN(a_{L-1}) (``qb`` = Q + beta).
    For layer 0 the masked scores D_0 * (Q K^T) do not depend on the state: the caller passes them in D's slot.
Update (``update``), eqs. 13-14 carried to the chunk's last token e:
    W_l' = Ae_l W_l + Be_l S_l - h_l^T (de_l * delta_l),      S_l' = Ee_l S_l - h_l^T (me_l * delta_l),
    i.e. WS_l' = C1_l * WS_l + [Be_l S_l | 0] - h_l^T [de_l * delta_l | me_l * delta_l] with C1_l = [Ae_l | Ee_l].

Coefficients of layer l, a tuple ``(A, B, D, C1, Be, de, me)`` (``None`` where the gate is off):
    A [N, b, C] decay product, B [N, b, C] momentum carry, D [N, t, i] (or [N, t, i, C] channel-wise),
    C1 [N, 1, 2 d_out] (or [N, 1, C] without momentum), Be [N, 1, C], de [N, i, C'], me [N, i, 1];
    C = 1 or d_out (channel-wise decay).
The backward (``chunk_backward``) recomputes this chunk's forward and applies the transposes of every line
above, including the second-order terms (the inner gradient is itself a derivative): sigma'' in the
delta chain and the derivative of the LayerNorm backward with respect to its input.
Every function is a plain tensor program (no autograd), so ``torch.compile`` can fuse it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from . import mlp
from .mlp import LOSS_GRAD_SCALE

ATEN = torch.ops.aten


# ----------------------------------------------------------------------------------------------- activations
def act_fn(name: str):
    """sigma (the memory MLP's activation, as ``mlp.activation`` defines it)."""
    return mlp.activation(name)[0]


def act_grad(name: str, g: Tensor, z: Tensor) -> Tensor:
    """g * sigma'(z) with ATen's fused kernels (no autograd runs here, so unlike ``mlp.activation``'s backward
    these need not be differentiable themselves)."""
    if name == "gelu":
        return ATEN.gelu_backward(g, z)
    if name == "silu":
        return ATEN.silu_backward(g, z)
    if name == "relu":
        return ATEN.threshold_backward(g, z, 0.0)
    return ATEN.tanh_backward(g, torch.tanh(z))


def act_grad2(name: str, g: Tensor, z: Tensor) -> Tensor | None:
    """g * sigma''(z) (None for relu, whose second derivative is zero almost everywhere)."""
    if name == "gelu":  # sigma = z Phi(z): sigma'' = phi(z) (2 - z^2)
        return g * torch.exp(-0.5 * z * z) * (2.0 - z * z) * (1.0 / math.sqrt(2.0 * math.pi))
    if name == "silu":  # sigma = z s(z): sigma'' = s (1 - s) (2 + z (1 - 2 s))
        s = torch.sigmoid(z)
        return g * s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    if name == "tanh":  # sigma'' = -2 t (1 - t^2)
        t = torch.tanh(z)
        return g * (-2.0) * t * (1.0 - t * t)
    return None


# ----------------------------------------------------------------------------------------------- LayerNorm
def ln_forward(z: Tensor, eps: float):
    """Parameter-free LayerNorm over the last axis (``mlp.layer_norm``): (n, mean, rstd)."""
    n, (_, mean, rstd) = mlp.layer_norm(z, eps)
    return n, mean, rstd


def ln_backward(g: Tensor, z: Tensor, mean: Tensor, rstd: Tensor) -> Tensor:
    """LN'(z)^T g = rstd (g - mean(g) - n mean(g n)) (``mlp.layer_norm_backward``)."""
    return mlp.layer_norm_backward(g, (z, mean, rstd))


def ln_backward_input_vjp(w: Tensor, g: Tensor, n: Tensor, rstd: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
    """The part of d<w, LN'(z)^T g>/dz that comes from z inside LN'(z) (g held fixed), expressed as the
    argument G and the extra term of  d/dz = LN'(z)^T G - (rstd <w, out> / D) n  (out = LN'(z)^T g).

    With out = rstd (g - mean(g) - n mean(g n)), the inner product <w, out> depends on z through n and rstd:
        d/dn (holding rstd) = -rstd (g mean(w n) + w mean(g n))     -> chained through n = LN(z): LN'(z)^T G
        d/d rstd = <w, out> / rstd, and d rstd / dz = -rstd^2 n / D  -> -(rstd <w, out> / D) n.
    Returns (G, extra) with extra = -(rstd <w, out> / D) n."""
    dim = n.shape[-1]
    mwn = (w * n).mean(-1, keepdim=True)
    mgn = (g * n).mean(-1, keepdim=True)
    G = -rstd * (g * mwn + w * mgn)
    extra = n * (-(rstd / dim) * (w * out).sum(-1, keepdim=True))
    return G, extra


# ----------------------------------------------------------------------------------------------- helpers
def _sum_to(t: Tensor, like: Tensor) -> Tensor:
    """Sum the broadcast axes of ``t`` so it has ``like``'s shape (coefficient gradients)."""
    if t.shape == like.shape:
        return t
    dims = [i for i, (a, b) in enumerate(zip(t.shape, like.shape)) if a != b]
    return t.sum(dims, keepdim=True)


def _scale(coef: Tensor | None, t: Tensor) -> Tensor:
    return t if coef is None else coef * t


def _scaled_scores(D: Tensor, s: Tensor | None) -> Tensor:
    """D_l * s_l with s_l = x_l h_l^T, the weights of the surprise terms in a read (``s`` None for layer 0,
    whose D slot already holds D_0 * (Q K^T))."""
    if s is None:
        return D
    return D * s if D.dim() == 3 else D * s.unsqueeze(-1)


# ----------------------------------------------------------------------------------------------- forward
def _w(ws: Tensor, dout: int, momentum: bool) -> Tensor:
    """W out of [W | S] (a view)."""
    return ws[..., :dout] if momentum else ws


def inner(WS, kq, v, off, lnw, act: str, eps: float, depth: int, b: int, momentum: bool, douts):
    """Inner-gradient factors at the chunk-start weights, with what the read and the backward reuse.

    Returns (hs, zs, deltas, zq0, eq0, ln): zq0 = Q W_0 and eq0 = Q S_0 come out of the same matmul as K W_0;
    ln = (n, mean, rstd, r, g, ps) for a deep memory."""
    sigma = act_fn(act)
    d0 = douts[0]
    zkq = torch.bmm(kq, WS[0])
    z0, zq0 = zkq[:, :b, :d0], zkq[:, b:, :d0]
    eq0 = zkq[:, b:, d0:] if momentum else None
    hs, zs = [kq[:, :b]], [z0]
    for l in range(1, depth):
        hs.append(sigma(zs[-1]))
        zs.append(torch.bmm(hs[-1], _w(WS[l], douts[l], momentum)))
    if depth == 1:
        return hs, zs, [LOSS_GRAD_SCALE * (z0 - v)], zq0, eq0, None
    zL = zs[-1]
    n, mean, rstd = ln_forward(zL, eps)
    r = torch.addcmul(off, lnw, n)
    g = r * (LOSS_GRAD_SCALE * lnw)
    deltas = [None] * depth
    ps = [None] * depth
    deltas[-1] = ln_backward(g, zL, mean, rstd)
    for l in range(depth - 2, -1, -1):
        ps[l] = torch.bmm(deltas[l + 1], _w(WS[l + 1], douts[l + 1], momentum).transpose(1, 2))
        deltas[l] = act_grad(act, ps[l], zs[l])
    return hs, zs, deltas, zq0, eq0, (n, mean, rstd, r, g, ps)


def _update_rhs(dl: Tensor, de: Tensor, me: Tensor | None) -> Tensor:
    """[de * delta | me * delta] (or de * delta without momentum): h^T times it is the chunk's total update."""
    return de * dl if me is None else torch.cat([de * dl, me * dl], dim=-1)


def update(WS, hs, deltas, coefs, momentum: bool, douts, targets=None):
    """Chunk-end state (eqs. 13-14 at the last token): WS' = C1 * WS + [Be S | 0] - h^T [de delta | me delta],
    plus [(1 - Ae) T | 0] with a decay target T (Ae = the W part of C1)."""
    out = []
    for l, (_, _, _, C1, Be, de, me) in enumerate(coefs):
        new = torch.baddbmm(_scale(C1, WS[l]), hs[l].transpose(1, 2), _update_rhs(deltas[l], de, me), alpha=-1.0)
        d = douts[l]
        if momentum:
            new[..., :d].addcmul_(Be, WS[l][..., d:])
        if targets is not None:
            T = targets[l]
            new[..., :d].add_(T).addcmul_(_w(C1, d, momentum), T, value=-1.0)
        out.append(new)
    return out


def read(WS, inn, coefs, act: str, depth: int, momentum: bool, douts, targets=None, r0=None):
    """Pre-activations a_l, layer inputs x_l (x_0 = Q is not needed: layer 0's c and e come from ``inner``) and
    the parts (c_l, e_l, s_l, x_l T_l) the backward needs. With a decay target (``targets``), a_l also holds
    (1 - A_l) (x_l T_l); layer 0's term is precomputed by the caller (``r0``)."""
    sigma = act_fn(act)
    hs, _, deltas, zq0, eq0, _ = inn
    xs, as_, cs, es, ss, xts = [None], [], [zq0], [eq0], [None], [None]
    for l, (A, B, D, *_) in enumerate(coefs):
        x = xs[-1]
        if l > 0:
            d = douts[l]
            ce = torch.bmm(x, WS[l])
            cs.append(ce[..., :d])
            es.append(ce[..., d:] if momentum else None)
            ss.append(torch.bmm(x, hs[l].transpose(1, 2)))
            xts.append(torch.bmm(x, targets[l]) if targets is not None else None)
        a = _scale(A, cs[l])
        if l == 0 and r0 is not None:
            a = a + r0
        elif xts[l] is not None:  # (1 - A) (x T) = x T - A (x T)
            a = a + xts[l] - A * xts[l]
        if momentum:
            a = torch.addcmul(a, B, es[l])
        Ds = _scaled_scores(D, ss[l])
        if Ds.dim() == 3:
            a = torch.baddbmm(a, Ds, deltas[l], alpha=-1.0)
        else:
            a = a - (Ds * deltas[l].unsqueeze(1)).sum(2)
        as_.append(a)
        if l < depth - 1:
            xs.append(sigma(a))
    return xs, as_, cs, es, ss, xts


def chunk_forward(WS, kq, qb, v, off, coefs, lnw, targets=None, r0=None, *, act: str, eps: float, depth: int, b: int,
                  momentum: bool, douts: tuple, do_update: bool):
    """y of the chunk's tokens and the state at its end (the start state when ``do_update`` is False)."""
    inn = inner(WS, kq, v, off, lnw, act, eps, depth, b, momentum, douts)
    as_ = read(WS, inn, coefs, act, depth, momentum, douts, targets, r0)[1]
    y = as_[-1] if depth == 1 else torch.addcmul(qb, lnw, ln_forward(as_[-1], eps)[0])
    if do_update:
        WS = update(WS, inn[0], inn[2], coefs, momentum, douts, targets)
    return y, WS


def chunk_state(WS, kq, v, off, coefs, lnw, targets=None, *, act: str, eps: float, depth: int, b: int,
                momentum: bool, douts: tuple):
    """The chunk-end state and the inner-gradient factors (the backward reuses them)."""
    inn = inner(WS, kq, v, off, lnw, act, eps, depth, b, momentum, douts)
    return update(WS, inn[0], inn[2], coefs, momentum, douts, targets), inn


# ----------------------------------------------------------------------------------------------- backward
def _acc(a: Tensor | None, t: Tensor) -> Tensor:
    return t if a is None else a + t


class _BackwardGrads(NamedTuple):
    """The gradients ``chunk_backward`` accumulates, one entry per layer (None where nothing flows): of the
    chunk-start [W | S] (fresh tensors, updated in place), of the layer inputs h and of the deltas of the inner
    gradient, of the 7 coefficients (a 7-list per layer, like ``coefs``) and of the decay targets."""

    gS: list
    gh: list
    gdelta: list
    gco: list
    gT: list


def _carry_backward(WS: Tensor, G: Tensor, C1: Tensor | None, Be: Tensor | None, target: Tensor | None, d: int,
                    momentum: bool):
    """Backward of the carried state WS' = C1 * WS + [Be S | 0] (+ [(1 - Ae) T | 0] with a decay target T):
    forgetting (eq. 13) and momentum (eq. 14) at the chunk's last token, for one layer with output gradient G.
    Returns (gWS, gC1, gBe, gT)."""
    gWS = G.clone() if C1 is None else C1 * G
    gC1 = None if C1 is None else _sum_to(WS * G, C1)
    gT = None
    if target is not None:
        gT, gC1 = _decay_target_backward(G, C1, gC1, target, d, momentum)
    gBe = None
    if momentum:
        P = G[..., :d]
        gWS[..., d:].addcmul_(Be, P)
        gBe = _sum_to(WS[..., d:] * P, Be)
    return gWS, gC1, gBe, gT


def _decay_target_backward(G: Tensor, C1: Tensor, gC1: Tensor, target: Tensor, d: int, momentum: bool):
    """Backward of the term [(1 - Ae) T | 0] of the carried state (eq. 13 acting on M - T, forgetting toward the
    decay target T): (gT, gC1 with the gradient of its Ae part added)."""
    GW = G[..., :d]
    gT = GW - _w(C1, d, momentum) * GW
    gAe = _sum_to(-(target * GW), _w(C1, d, momentum))
    if momentum:
        gC1[..., :d] += gAe
    else:
        gC1 = gC1 + gAe
    return gT, gC1


def _surprise_update_backward(h: Tensor, dl: Tensor, G: Tensor, de: Tensor, me: Tensor | None, d: int,
                              momentum: bool):
    """Backward of the chunk's summed surprise in the update, -h^T [de * delta | me * delta] (the inner gradients
    u_i = h_i^T delta_i of eq. 12 weighted by eqs. 13-14 unrolled to the last token): (gh, gdelta, gde, gme)."""
    hG = torch.bmm(h, G)  # [i, (2) d_out]
    hP = hG[..., :d]
    gdelta = -(de * hP)
    gde = _sum_to(-(dl * hP), de)
    gme = None
    if momentum:
        hR = hG[..., d:]
        gdelta = torch.addcmul(gdelta, me, hR, value=-1.0)
        gme = _sum_to(-(dl * hR), me)
    gh = -torch.bmm(_update_rhs(dl, de, me), G.transpose(1, 2))
    return gh, gdelta, gde, gme


def update_backward(WS, hs, deltas, coefs, targets, gWS, momentum: bool, douts, do_update: bool) -> _BackwardGrads:
    """Backward of ``update`` (eqs. 13-14 at the chunk's last token): WS' = C1 * WS + [Be S | 0]
    - h^T [de delta | me delta] (+ the decay target's term). Starts the gradients of the chunk-start state, of
    h, of delta, of C1, Be, de, me (``gco`` slots 3-6) and of the targets."""
    depth = len(coefs)
    grads = _BackwardGrads([None] * depth, [None] * depth, [None] * depth, [[None] * 7 for _ in range(depth)],
                           [None] * depth)
    for l, (_, _, _, C1, Be, de, me) in enumerate(coefs):
        G = gWS[l]
        if not do_update:
            grads.gS[l] = G.clone()
            continue
        target = targets[l] if targets is not None else None
        gco = grads.gco[l]
        grads.gS[l], gco[3], gco[4], grads.gT[l] = _carry_backward(WS[l], G, C1, Be, target, douts[l], momentum)
        grads.gh[l], grads.gdelta[l], gco[5], gco[6] = _surprise_update_backward(hs[l], deltas[l], G, de, me,
                                                                                 douts[l], momentum)
    return grads


def output_backward(gy: Tensor, a_last: Tensor, lnw: Tensor | None, eps: float, depth: int):
    """Backward of the retrieved output (eq. 15): y = a_0 (depth 1) or y = Q + beta + gamma LN(a_{L-1}).
    Returns (the gradient of the last layer's pre-activation, of qb = Q + beta, of gamma)."""
    if depth == 1:
        return gy, None, None
    n, mean, rstd = ln_forward(a_last, eps)
    glnw = _sum_to(gy * n, lnw)
    return ln_backward(gy * lnw, a_last, mean, rstd), gy, glnw


def _read_gates_backward(ga: Tensor, A: Tensor | None, B: Tensor | None, c: Tensor, e: Tensor | None,
                         xt: Tensor | None, momentum: bool):
    """Backward of the gate terms of a read, a = A c + (1 - A) (x T) + B e + ...: forgetting (eq. 13) and
    momentum (eq. 14) unrolled to each token. Returns (gA, gB, the gradient of [c | e], of x T (None without
    a decay target))."""
    gA = None if A is None else _sum_to(ga * (c if xt is None else c - xt), A)
    gc = _scale(A, ga)
    gat = None if xt is None else ga - A * ga
    if not momentum:
        return gA, None, gc, gat
    return gA, _sum_to(ga * e, B), torch.cat([gc, B * ga], dim=-1), gat


def _read_surprise_backward(ga: Tensor, Ds: Tensor, dl: Tensor, gdelta: Tensor | None):
    """Backward of the read's surprise term a -= (D * s) delta (every earlier token's inner gradient, eq. 12,
    read in dual form). Returns (the gradient of D * s, gdelta with this term's share added)."""
    if Ds.dim() == 3:
        gDs = -torch.bmm(ga, dl.transpose(1, 2))  # [t, i]
        gdelta = (-torch.bmm(Ds.transpose(1, 2), ga) if gdelta is None
                  else torch.baddbmm(gdelta, Ds.transpose(1, 2), ga, alpha=-1.0))
        return gDs, gdelta
    # channel-wise: a_tc -= sum_i Ds_tic delta_ic
    gDs = -(ga.unsqueeze(2) * dl.unsqueeze(1))  # [t, i, c]
    return gDs, _acc(gdelta, -(Ds * ga.unsqueeze(2)).sum(1))


def _read_terms_backward(l: int, ga: Tensor, fwd, coefs, deltas, grads: _BackwardGrads, momentum: bool):
    """Backward of layer l's read a_l = A_l c_l + (1 - A_l) (x_l T_l) + B_l e_l - (D_l * s_l) delta_l in terms
    of its parts: sets the gradients of A_l, B_l, adds those of T_l and delta_l. Returns (the gradient of
    [c_l | e_l], of x_l T_l (or None), of D_l * s_l)."""
    xs, _, cs, es, ss, xts = fwd
    A, B, D = coefs[l][:3]
    gco = grads.gco[l]
    gco[0], gco[1], gce, gat = _read_gates_backward(ga, A, B, cs[l], es[l], xts[l], momentum)
    if gat is not None:
        grads.gT[l] = _acc(grads.gT[l], torch.bmm(xs[l].transpose(1, 2), gat))
    gDs, grads.gdelta[l] = _read_surprise_backward(ga, _scaled_scores(D, ss[l]), deltas[l], grads.gdelta[l])
    return gce, gat, gDs


def _scaled_scores_backward(gDs: Tensor, D: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Backward of D * s (s = x h^T, layers l > 0): (gD, gs)."""
    if D.dim() == 3:
        return gDs * s, gDs * D
    return gDs * s.unsqueeze(-1), (gDs * D).sum(-1)


def _read_input_backward(l: int, gce: Tensor, gat: Tensor | None, gDs: Tensor, fwd, coefs, hs, WS, targets,
                         grads: _BackwardGrads) -> Tensor:
    """Backward of what layer l > 0 reads from its input x_l: [c | e] = x WS, s = x h^T, x T (decay target).
    Sets the gradient of D_l, adds those of h_l and of the chunk-start WS_l; returns the gradient of x_l."""
    x, s = fwd[0][l], fwd[4][l]
    grads.gco[l][2], gs = _scaled_scores_backward(gDs, coefs[l][2], s)
    gx = torch.baddbmm(torch.bmm(gs, hs[l]), gce, WS[l].transpose(1, 2))
    if gat is not None:
        gx = torch.baddbmm(gx, gat, targets[l].transpose(1, 2))
    grads.gh[l] = _acc(grads.gh[l], torch.bmm(gs.transpose(1, 2), x))
    grads.gS[l].baddbmm_(x.transpose(1, 2), gce)
    return gx


def read_backward(ga: Tensor, WS, hs, deltas, fwd, coefs, targets, r0, grads: _BackwardGrads, act: str,
                  momentum: bool):
    """Backward of ``read`` (the retrieval y_t = M_t(q_t), eq. 15, in dual form) from the output back to the
    queries, layer by layer (x_{l+1} = sigma(a_l)). ga: the gradient of the last layer's pre-activation.
    Returns (the gradient of layer 0's [c_0 | e_0] = Q WS_0, which came out of the kq matmul of ``inner``; that
    of r0). Layer 0's D slot holds D_0 * (Q K^T), so its gradient is the one of D * s."""
    as_ = fwd[1]
    for l in range(len(coefs) - 1, 0, -1):
        gce, gat, gDs = _read_terms_backward(l, ga, fwd, coefs, deltas, grads, momentum)
        gx = _read_input_backward(l, gce, gat, gDs, fwd, coefs, hs, WS, targets, grads)
        ga = act_grad(act, gx, as_[l - 1])
    gce0, _, grads.gco[0][2] = _read_terms_backward(0, ga, fwd, coefs, deltas, grads, momentum)
    return gce0, (ga if r0 is not None else None)


def delta_chain_backward(gdelta: list, zs, ps, WS, act: str, douts, momentum: bool):
    """Backward of the delta chain of the inner gradient (eq. 12's gradient backpropagated through the memory
    MLP), delta_l = sigma'(z_l) p_l with p_l = delta_{l+1} W_{l+1}^T, including its second-order term sigma''.
    Adds into gdelta[l + 1]; returns (gz, gp): the gradients of z_l (from sigma'(z_l)) and of p_l."""
    depth = len(zs)
    gz: list = [None] * depth
    gp: list = [None] * depth
    for l in range(depth - 1):
        gp[l] = act_grad(act, gdelta[l], zs[l])
        gz[l] = act_grad2(act, ps[l] * gdelta[l], zs[l])
        gdelta[l + 1] = torch.baddbmm(gdelta[l + 1], gp[l], _w(WS[l + 1], douts[l + 1], momentum))
    return gz, gp


def loss_error_backward(gz: list, gdelta: list, zs, deltas, ln, lnw: Tensor | None, glnw: Tensor | None):
    """Backward of the error at the memory's output, the gradient of the associative loss ||M(k) - v||^2
    (eq. 12) with respect to M(k): delta_0 = 2 (z_0 - V) (depth 1), or delta_{L-1} = LN'(z)^T g, g = 2 gamma r,
    r = gamma n + off (with the derivative of LN' itself). Sets / adds gz[-1]; returns (gv, goff, glnw)."""
    if ln is None:
        gz[0] = LOSS_GRAD_SCALE * gdelta[0]
        return -gz[0], None, glnw
    n, mean, rstd, r, g, _ = ln
    w = gdelta[-1]
    gg = ln_backward(w, zs[-1], mean, rstd)
    G_, extra = ln_backward_input_vjp(w, g, n, rstd, deltas[-1])
    gr = gg * (LOSS_GRAD_SCALE * lnw)
    glnw = glnw + _sum_to(LOSS_GRAD_SCALE * r * gg + n * gr, lnw)
    gz[-1] = _acc(gz[-1], ln_backward(torch.addcmul(G_, lnw, gr), zs[-1], mean, rstd) + extra)
    return None, gr, glnw


def inner_forward_backward(gz: list, gp: list, gh: list, hs, zs, deltas, WS, gS: list, act: str, douts,
                           momentum: bool):
    """Backward of the inner forward pass z_l = h_l W_l, h_{l+1} = sigma(z_l) at the chunk-start weights
    (layers L-1..1; layer 0 in ``kq_backward``). W_l's gradient from z_l and from the delta chain
    (p_{l-1} = delta_l W_l^T) in one matmul, [h_l; gp_{l-1}]^T [gz_l; delta_l]. gh: the gradients of h_l from
    the update and the read. Adds into gz and gS."""
    for l in range(len(zs) - 1, 0, -1):
        gh_l = _acc(gh[l], torch.bmm(gz[l], _w(WS[l], douts[l], momentum).transpose(1, 2)))
        gz[l - 1] = _acc(gz[l - 1], act_grad(act, gh_l, zs[l - 1]))
        rhs = torch.cat([gz[l], deltas[l]], dim=1)
        if momentum:
            rhs = torch.cat([rhs, torch.zeros_like(rhs)], dim=-1)
        gS[l].baddbmm_(torch.cat([hs[l], gp[l - 1]], dim=1).transpose(1, 2), rhs)


def kq_backward(kq: Tensor, WS0: Tensor, gz0: Tensor, gce0: Tensor, gh0: Tensor | None, gS0: Tensor, b: int,
                momentum: bool) -> Tensor:
    """Backward of layer 0's matmul [K; Q] [W_0 | S_0], which gave z_0 (K rows, W part) and [c_0 | e_0] (Q rows);
    h_0 = K (the rows :b of kq) also enters the update (gh0). Adds into gS0; returns the gradient of kq."""
    gk_rows = torch.cat([gz0, torch.zeros_like(gz0)], dim=-1) if momentum else gz0
    gzkq = torch.cat([gk_rows, gce0], dim=1)
    gS0.baddbmm_(kq.transpose(1, 2), gzkq)
    gkq = torch.bmm(gzkq, WS0.transpose(1, 2))
    if gh0 is not None:
        gkq[:, :b] += gh0
    return gkq


def chunk_backward(WS, kq, qb, v, off, coefs, lnw, targets, r0, gy, gWS, inn=None, *, act: str, eps: float,
                   depth: int, b: int, momentum: bool, douts: tuple, do_update: bool):
    """Vector-Jacobian product of ``chunk_forward`` at one chunk.

    gy [N, b, d]: gradient of y; gWS: gradients of the chunk-end state (list); ``inn``: this chunk's ``inner``
    result if the caller has it (recomputed otherwise).
    Returns (gWS0, gkq, gqb, gv, goff, gcoefs, glnw, gtargets, gr0): gradients of the chunk-start state and of
    every input (None where the input is not used), gcoefs as a list of 7-lists like ``coefs``, gtargets one per
    layer (this chunk's share; None without a decay target).
    The forward's steps in reverse: the update (eqs. 13-14), the read (eq. 15), then the inner gradient (eq. 12):
    its delta chain, its error at the output, its forward pass and the kq matmul."""
    if inn is None:
        inn = inner(WS, kq, v, off, lnw, act, eps, depth, b, momentum, douts)
    hs, zs, deltas, _, _, ln = inn
    fwd = read(WS, inn, coefs, act, depth, momentum, douts, targets, r0)
    grads = update_backward(WS, hs, deltas, coefs, targets, gWS, momentum, douts, do_update)
    ga, gqb, glnw = output_backward(gy, fwd[1][-1], lnw, eps, depth)
    gce0, gr0 = read_backward(ga, WS, hs, deltas, fwd, coefs, targets, r0, grads, act, momentum)
    gz, gp = delta_chain_backward(grads.gdelta, zs, ln[5] if ln is not None else None, WS, act, douts, momentum)
    gv, goff, glnw = loss_error_backward(gz, grads.gdelta, zs, deltas, ln, lnw, glnw)
    inner_forward_backward(gz, gp, grads.gh, hs, zs, deltas, WS, grads.gS, act, douts, momentum)
    gkq = kq_backward(kq, WS[0], gz[0], gce0, grads.gh[0], grads.gS[0], b, momentum)
    return grads.gS, gkq, gqb, gv, goff, grads.gco, glnw, grads.gT, gr0
