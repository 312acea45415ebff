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
        Ds = D if l == 0 else (D * ss[l] if D.dim() == 3 else D * ss[l].unsqueeze(-1))
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
def chunk_backward(WS, kq, qb, v, off, coefs, lnw, targets, r0, gy, gWS, inn=None, *, act: str, eps: float,
                   depth: int, b: int, momentum: bool, douts: tuple, do_update: bool):
    """Vector-Jacobian product of ``chunk_forward`` at one chunk.

    gy [N, b, d]: gradient of y; gWS: gradients of the chunk-end state (list); ``inn``: this chunk's ``inner``
    result if the caller has it (recomputed otherwise).
    Returns (gWS0, gkq, gqb, gv, goff, gcoefs, glnw, gtargets, gr0): gradients of the chunk-start state and of
    every input (None where the input is not used), gcoefs as a list of 7-lists like ``coefs``, gtargets one per
    layer (this chunk's share; None without a decay target)."""
    if inn is None:
        inn = inner(WS, kq, v, off, lnw, act, eps, depth, b, momentum, douts)
    hs, zs, deltas, zq0, eq0, ln = inn
    if depth > 1:
        n, mean, rstd, r, g, ps = ln
    xs, as_, cs, es, ss, xts = read(WS, inn, coefs, act, depth, momentum, douts, targets, r0)

    gS: list = [None] * depth  # gradients of the chunk-start [W | S], fresh tensors (updated in place below)
    gh: list = [None] * depth
    gdelta: list = [None] * depth
    gco = [[None] * 7 for _ in range(depth)]
    gT: list = [None] * depth
    glnw = gqb = gv = goff = gr0 = None

    def acc(a, t):
        return t if a is None else a + t

    # ---- update: WS' = C1 * WS + [Be S | 0] - h^T [de delta | me delta]
    for l, (_, _, _, C1, Be, de, me) in enumerate(coefs):
        G = gWS[l]
        if not do_update:
            gS[l] = G.clone()
            continue
        d = douts[l]
        gS[l] = G.clone() if C1 is None else C1 * G
        if C1 is not None:
            gco[l][3] = _sum_to(WS[l] * G, C1)
        if targets is not None:  # + (1 - Ae) T on the W part
            GW, T = G[..., :d], targets[l]
            gT[l] = GW - _w(C1, d, momentum) * GW
            gAe = _sum_to(-(T * GW), _w(C1, d, momentum))
            if momentum:
                gco[l][3][..., :d] += gAe
            else:
                gco[l][3] = gco[l][3] + gAe
        if momentum:
            P = G[..., :d]
            gS[l][..., d:].addcmul_(Be, P)
            gco[l][4] = _sum_to(WS[l][..., d:] * P, Be)
        h, dl = hs[l], deltas[l]
        hG = torch.bmm(h, G)  # [i, (2) d_out]
        hP = hG[..., :d]
        gdelta[l] = -(de * hP)
        gco[l][5] = _sum_to(-(dl * hP), de)
        if momentum:
            hR = hG[..., d:]
            gdelta[l] = torch.addcmul(gdelta[l], me, hR, value=-1.0)
            gco[l][6] = _sum_to(-(dl * hR), me)
        gh[l] = -torch.bmm(_update_rhs(dl, de, me), G.transpose(1, 2))

    # ---- read, from the output back to the query
    if depth == 1:
        ga = gy
    else:
        n2, mean2, rstd2 = ln_forward(as_[-1], eps)
        gqb = gy
        glnw = _sum_to(gy * n2, lnw)
        ga = ln_backward(gy * lnw, as_[-1], mean2, rstd2)
    gce0 = None
    for l in range(depth - 1, -1, -1):
        A, B, D = coefs[l][:3]
        if A is not None:
            gco[l][0] = _sum_to(ga * (cs[l] if xts[l] is None else cs[l] - xts[l]), A)
        gc = _scale(A, ga)
        if l == 0 and r0 is not None:
            gr0 = ga
        gat = None  # (1 - A) ga: the gradient of x_l T_l
        if xts[l] is not None:
            gat = ga - A * ga
            gT[l] = acc(gT[l], torch.bmm(xs[l].transpose(1, 2), gat))
        if momentum:
            gco[l][1] = _sum_to(ga * es[l], B)
            gce = torch.cat([gc, B * ga], dim=-1)
        else:
            gce = gc
        dl = deltas[l]
        Ds = D if l == 0 else (D * ss[l] if D.dim() == 3 else D * ss[l].unsqueeze(-1))
        if Ds.dim() == 3:
            gDs = -torch.bmm(ga, dl.transpose(1, 2))  # [t, i]
            gdelta[l] = (-torch.bmm(Ds.transpose(1, 2), ga) if gdelta[l] is None
                         else torch.baddbmm(gdelta[l], Ds.transpose(1, 2), ga, alpha=-1.0))
        else:  # channel-wise: a_tc -= sum_i Ds_tic delta_ic
            gDs = -(ga.unsqueeze(2) * dl.unsqueeze(1))  # [t, i, c]
            gdelta[l] = acc(gdelta[l], -(Ds * ga.unsqueeze(2)).sum(1))
        if l == 0:
            gco[0][2] = gDs
            gce0 = gce  # [c_0 | e_0] = Q WS_0: through the kq matmul below
            continue
        x, s = xs[l], ss[l]
        if D.dim() == 3:
            gco[l][2] = gDs * s
            gs = gDs * D
        else:
            gco[l][2] = gDs * s.unsqueeze(-1)
            gs = (gDs * D).sum(-1)
        # [c | e] = x WS,  s = x h^T
        gx = torch.baddbmm(torch.bmm(gs, hs[l]), gce, WS[l].transpose(1, 2))
        if gat is not None:
            gx = torch.baddbmm(gx, gat, targets[l].transpose(1, 2))
        gh[l] = acc(gh[l], torch.bmm(gs.transpose(1, 2), x))
        gS[l].baddbmm_(x.transpose(1, 2), gce)
        ga = act_grad(act, gx, as_[l - 1])

    # ---- the delta chain delta_l = sigma'(z_l) * (delta_{l+1} W_{l+1}^T), with its second-order term
    gz: list = [None] * depth
    gp: list = [None] * depth
    for l in range(depth - 1):
        gp[l] = act_grad(act, gdelta[l], zs[l])
        gz[l] = act_grad2(act, ps[l] * gdelta[l], zs[l])
        gdelta[l + 1] = torch.baddbmm(gdelta[l + 1], gp[l], _w(WS[l + 1], douts[l + 1], momentum))

    # ---- the error at the output: delta_{L-1} = LN'(z)^T g,  g = 2 gamma r,  r = gamma n + off
    if depth == 1:
        gz[0] = LOSS_GRAD_SCALE * gdelta[0]
        gv = -gz[0]
    else:
        w = gdelta[-1]
        gg = ln_backward(w, zs[-1], mean, rstd)
        G_, extra = ln_backward_input_vjp(w, g, n, rstd, deltas[-1])
        gr = gg * (LOSS_GRAD_SCALE * lnw)
        glnw = glnw + _sum_to(LOSS_GRAD_SCALE * r * gg + n * gr, lnw)
        goff = gr
        gz[-1] = acc(gz[-1], ln_backward(torch.addcmul(G_, lnw, gr), zs[-1], mean, rstd) + extra)

    # ---- the forward chain z_l = h_l W_l, h_{l+1} = sigma(z_l); W_l's gradient from z_l and from the delta
    # chain (p_{l-1} = delta_l W_l^T) in one matmul: [h_l; gp_{l-1}]^T [gz_l; delta_l]
    for l in range(depth - 1, 0, -1):
        gz[l - 1] = acc(gz[l - 1], act_grad(act, acc(gh[l], torch.bmm(gz[l], _w(WS[l], douts[l], momentum)
                                                                           .transpose(1, 2))), zs[l - 1]))
        rhs = torch.cat([gz[l], deltas[l]], dim=1)
        if momentum:
            rhs = torch.cat([rhs, torch.zeros_like(rhs)], dim=-1)
        gS[l].baddbmm_(torch.cat([hs[l], gp[l - 1]], dim=1).transpose(1, 2), rhs)
    # layer 0: the rows [K; Q] times [W_0 | S_0] gave z_0 (K rows, W part) and [c_0 | e_0] (Q rows)
    gk_rows = torch.cat([gz[0], torch.zeros_like(gz[0])], dim=-1) if momentum else gz[0]
    gzkq = torch.cat([gk_rows, gce0], dim=1)
    gS[0].baddbmm_(kq.transpose(1, 2), gzkq)
    gkq = torch.bmm(gzkq, WS[0].transpose(1, 2))
    if gh[0] is not None:  # h_0 = K (the rows :b of kq) also enters the update
        gkq[:, :b] += gh[0]
    return gS, gkq, gqb, gv, goff, gco, glnw, gT, gr0
