"""One chunk of the memory recurrence and its hand-derived vector-Jacobian product (for ``scan.memory_scan``).

Notation (one chunk of b tokens, all gradients taken at the chunk-start state, paper eqs. 16-17; row vectors,
leading axis N = batch x heads). Memory layers l = 0..L-1 with weights W_l [d_in, d_out], momentum S_l.

Inner gradient (``inner``), at the chunk-start weights:
    h_0 = K,  z_l = h_l W_l,  h_{l+1} = sigma(z_l)                                  (l < L-1)
    depth 1:  delta_0 = 2 (z_0 - V)
    depth L:  n = LN(z_{L-1}),  r = gamma n + off  (off = K + beta - V, so r = M(K) - V),  g = 2 gamma r,
              delta_{L-1} = LN'(z_{L-1})^T g,  p_l = delta_{l+1} W_{l+1}^T,  delta_l = sigma'(z_l) p_l
    the gradient of layer l summed over the chunk is u_l = h_l^T delta_l.
Read (``read``), write-then-read y_t = M_t(q_t) in dual form (see ``chunked``):
    x_0 = Q,  a_l = A_l c_l + B_l e_l - (D_l * (x_l h_l^T)) delta_l,  c_l = x_l W_l,  e_l = x_l S_l,
    x_{l+1} = sigma(a_l);   y = a_0 (depth 1)  or  y = Q + beta + gamma LN(a_{L-1}) (``qb`` = Q + beta).
    For layer 0 the masked scores D_0 * (Q K^T) do not depend on the state: the caller passes them (``M0``).
Update (``update``), eqs. 13-14 carried to the chunk's last token e:
    W_l' = Ae_l W_l + Be_l S_l - h_l^T (de_l * delta_l),      S_l' = Ee_l S_l - h_l^T (me_l * delta_l).

Coefficients of layer l, a tuple ``(A, B, D, Ae, Be, de, me, Ee)`` (``None`` where the gate is off):
    A [N, b, C] decay product, B [N, b, C] momentum carry, D [N, t, i] (or [N, t, i, C] channel-wise),
    Ae, Be [N, 1, C], de [N, i, C'], me [N, i, 1], Ee [N, 1, 1];  C = 1 or d_out (channel-wise decay).
The backward (``chunk_backward``) recomputes this chunk's forward and applies the transposes of every line
above, including the second-order terms (the inner gradient is itself a derivative): sigma'' in the
delta chain and the derivative of the LayerNorm backward with respect to its input.
Every function is a plain tensor program (no autograd), so ``torch.compile`` can fuse it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlp import LOSS_GRAD_SCALE

ATEN = torch.ops.aten


# ----------------------------------------------------------------------------------------------- activations
def act_fn(name: str):
    return {"gelu": F.gelu, "silu": F.silu, "relu": F.relu, "tanh": torch.tanh}[name]


def act_grad(name: str, g: Tensor, z: Tensor) -> Tensor:
    """g * sigma'(z)."""
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
    """Parameter-free LayerNorm over the last axis: (n, mean, rstd)."""
    return ATEN.native_layer_norm(z, z.shape[-1:], None, None, eps)


def ln_backward(g: Tensor, z: Tensor, mean: Tensor, rstd: Tensor) -> Tensor:
    """LN'(z)^T g = rstd (g - mean(g) - n mean(g n))."""
    return ATEN.native_layer_norm_backward(g, z, z.shape[-1:], mean, rstd, None, None, [True, False, False])[0]


def ln_backward_input_vjp(w: Tensor, g: Tensor, n: Tensor, rstd: Tensor, out: Tensor) -> Tensor:
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
def inner(W, S, kq, v, off, lnw, act: str, eps: float, depth: int, b: int):
    """Inner-gradient factors at the chunk-start weights, with what the read and the backward reuse.

    Returns (hs, zs, deltas, zq0, eq0, ln) where zq0 = Q W_0 and eq0 = Q S_0 come out of the same matmul as
    K W_0 (stacked rows ``kq`` = [K; Q] times [W_0 | S_0]) and ln = (n, mean, rstd, r, g, ps) for a deep memory."""
    sigma = act_fn(act)
    dout = W[0].shape[-1]
    right = W[0] if S is None else torch.cat([W[0], S[0]], dim=-1)
    zkq = torch.bmm(kq, right)
    z0, zq0 = zkq[:, :b, :dout], zkq[:, b:, :dout]
    eq0 = zkq[:, b:, dout:] if S is not None else None
    hs, zs = [kq[:, :b]], [z0]
    for l in range(1, depth):
        hs.append(sigma(zs[-1]))
        zs.append(torch.bmm(hs[-1], W[l]))
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
        ps[l] = torch.bmm(deltas[l + 1], W[l + 1].transpose(1, 2))
        deltas[l] = act_grad(act, ps[l], zs[l])
    return hs, zs, deltas, zq0, eq0, (n, mean, rstd, r, g, ps)


def update(W, S, hs, deltas, coefs):
    """Chunk-end state (eqs. 13-14 at the last token)."""
    newW, newS = [], []
    for l, (_, _, _, Ae, Be, de, me, Ee) in enumerate(coefs):
        hT = hs[l].transpose(1, 2)
        if S is not None:
            upd = torch.bmm(hT, torch.cat([de * deltas[l], me * deltas[l]], dim=-1))
            dout = W[l].shape[-1]
            uw, us = upd[..., :dout], upd[..., dout:]
            newW.append(torch.addcmul(_scale(Ae, W[l]) - uw, Be, S[l]))
            newS.append(torch.addcmul(-us, Ee, S[l]))
        else:
            newW.append(torch.baddbmm(_scale(Ae, W[l]), hT, de * deltas[l], alpha=-1.0))
    return newW, (newS if S is not None else None)


def read(W, S, q, inn, coefs, act: str, depth: int):
    """Pre-activations a_l, layer inputs x_l, the parts (c_l, e_l, s_l) the backward needs, and the right-hand
    matrices [W_l | S_l | h_l^T] of the deeper layers (one matmul gives c_l, e_l and s_l)."""
    sigma = act_fn(act)
    hs, _, deltas, zq0, eq0, _ = inn
    xs, as_, cs, es, ss, rights = [q], [], [zq0], [eq0], [None], [None]
    for l, (A, B, D, *_) in enumerate(coefs):
        x = xs[-1]
        if l > 0:
            dout = W[l].shape[-1]
            parts = [W[l], hs[l].transpose(1, 2)] if S is None else [W[l], S[l], hs[l].transpose(1, 2)]
            right = torch.cat(parts, dim=-1)
            out = torch.bmm(x, right)
            rights.append(right)
            cs.append(out[..., :dout])
            es.append(out[..., dout:2 * dout] if S is not None else None)
            ss.append(out[..., (2 if S is not None else 1) * dout:])
        a = _scale(A, cs[l])
        if es[l] is not None:
            a = torch.addcmul(a, B, es[l])
        Ds = D if l == 0 else (D * ss[l] if D.dim() == 3 else D * ss[l].unsqueeze(-1))
        if Ds.dim() == 3:
            a = torch.baddbmm(a, Ds, deltas[l], alpha=-1.0)
        else:
            a = a - (Ds * deltas[l].unsqueeze(1)).sum(2)
        as_.append(a)
        if l < depth - 1:
            xs.append(sigma(a))
    return xs, as_, cs, es, ss, rights


def chunk_forward(W, S, kq, q, qb, v, off, coefs, lnw, *, act: str, eps: float, depth: int, b: int,
                  do_update: bool):
    """y of the chunk's tokens and the state at its end (the start state when ``do_update`` is False)."""
    inn = inner(W, S, kq, v, off, lnw, act, eps, depth, b)
    as_ = read(W, S, q, inn, coefs, act, depth)[1]
    y = as_[-1] if depth == 1 else torch.addcmul(qb, lnw, ln_forward(as_[-1], eps)[0])
    if do_update:
        W, S = update(W, S, inn[0], inn[2], coefs)
    return y, W, S


def chunk_state(W, S, kq, v, off, coefs, lnw, *, act: str, eps: float, depth: int, b: int):
    """The chunk-end state and the inner-gradient factors (the backward reuses them)."""
    inn = inner(W, S, kq, v, off, lnw, act, eps, depth, b)
    newW, newS = update(W, S, inn[0], inn[2], coefs)
    return newW, newS, inn


# ----------------------------------------------------------------------------------------------- backward
def chunk_backward(W, S, kq, q, qb, v, off, coefs, lnw, gy, gW, gS, inn=None, *, act: str, eps: float, depth: int,
                   b: int, do_update: bool):
    """Vector-Jacobian product of ``chunk_forward`` at one chunk.

    gy [N, b, d]: gradient of y; gW / gS: gradients of the chunk-end state (lists); ``inn``: this chunk's
    ``inner`` result if the caller has it (recomputed otherwise).
    Returns (gW0, gS0, gkq, gk, gq, gqb, gv, goff, gcoefs, glnw): gradients of the chunk-start state and of
    every input (None where the input is not used), gcoefs as a list of 8-lists like ``coefs``."""
    if inn is None:
        inn = inner(W, S, kq, v, off, lnw, act, eps, depth, b)
    hs, zs, deltas, zq0, eq0, ln = inn
    if depth > 1:
        n, mean, rstd, r, g, ps = ln
    xs, as_, cs, es, ss, rights = read(W, S, q, inn, coefs, act, depth)

    gWs: list = [None] * depth
    gSs: list = [None] * depth
    gh: list = [None] * depth
    gdelta: list = [None] * depth
    gco = [[None] * 8 for _ in range(depth)]
    glnw = gqb = gq = gv = goff = None

    def acc(a, t):
        return t if a is None else a + t

    # ---- update: W' = Ae W + Be S - h^T (de * delta),  S' = Ee S - h^T (me * delta)
    for l, (_, _, _, Ae, Be, de, me, Ee) in enumerate(coefs):
        if not do_update:
            gWs[l], gSs[l] = gW[l], (gS[l] if S is not None else None)
            continue
        P = gW[l]
        gWs[l] = _scale(Ae, P)
        if Ae is not None:
            gco[l][3] = _sum_to(W[l] * P, Ae)
        h, dl = hs[l], deltas[l]
        if S is not None:
            R = gS[l]
            gSs[l] = torch.addcmul(Ee * R, Be, P)
            gco[l][4] = _sum_to(S[l] * P, Be)
            gco[l][7] = _sum_to(S[l] * R, Ee)
            PR = torch.cat([P, R], dim=-1)
            hPR = torch.bmm(h, PR)  # [i, 2 d_out]
            dout = P.shape[-1]
            hP, hR = hPR[..., :dout], hPR[..., dout:]
            gdelta[l] = -(de * hP + me * hR)
            gco[l][5] = _sum_to(-(dl * hP), de)
            gco[l][6] = _sum_to(-(dl * hR), me)
            gh[l] = -torch.bmm(torch.cat([de * dl, me * dl], dim=-1), PR.transpose(1, 2))
        else:
            hP = torch.bmm(h, P)
            gdelta[l] = -(de * hP)
            gco[l][5] = _sum_to(-(dl * hP), de)
            gh[l] = -torch.bmm(de * dl, P.transpose(1, 2))

    # ---- read, from the output back to the query
    if depth == 1:
        ga = gy
    else:
        n2, mean2, rstd2 = ln_forward(as_[-1], eps)
        gqb = gy
        glnw = _sum_to(gy * n2, lnw)
        ga = ln_backward(gy * lnw, as_[-1], mean2, rstd2)
    gzq0 = None
    for l in range(depth - 1, -1, -1):
        A, B, D = coefs[l][:3]
        x = xs[l]
        if A is not None:
            gco[l][0] = _sum_to(ga * cs[l], A)
        gc = _scale(A, ga)
        ge = None
        if S is not None:
            gco[l][1] = _sum_to(ga * es[l], B)
            ge = B * ga
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
            gzq0 = gc
            if ge is not None:  # e_0 = Q S_0
                gSs[0] = torch.baddbmm(gSs[0], x.transpose(1, 2), ge)
                gq = torch.bmm(ge, S[0].transpose(1, 2))
        else:
            s = ss[l]
            if D.dim() == 3:
                gco[l][2] = gDs * s
                gs = gDs * D
            else:
                gco[l][2] = gDs * s.unsqueeze(-1)
                gs = (gDs * D).sum(-1)
            # c, e, s = x [W | S | h^T]: one matmul back to x, one to [W | S], one to h
            gout = torch.cat([gc, gs] if ge is None else [gc, ge, gs], dim=-1)
            gx = torch.bmm(gout, rights[l].transpose(1, 2))
            gh[l] = acc(gh[l], torch.bmm(gs.transpose(1, 2), x))
            xT = x.transpose(1, 2)
            if ge is None:
                gWs[l] = torch.baddbmm(gWs[l], xT, gc)
            else:
                dout = gc.shape[-1]
                gws = torch.bmm(xT, torch.cat([gc, ge], dim=-1))
                gWs[l] = gWs[l] + gws[..., :dout]
                gSs[l] = gSs[l] + gws[..., dout:]
            ga = act_grad(act, gx, as_[l - 1])

    # ---- the delta chain delta_l = sigma'(z_l) * (delta_{l+1} W_{l+1}^T), with its second-order term
    gz: list = [None] * depth
    for l in range(depth - 1):
        gp = act_grad(act, gdelta[l], zs[l])
        second = act_grad2(act, ps[l] * gdelta[l], zs[l])
        if second is not None:
            gz[l] = second
        gdelta[l + 1] = torch.baddbmm(gdelta[l + 1], gp, W[l + 1])
        gWs[l + 1] = torch.baddbmm(gWs[l + 1], gp.transpose(1, 2), deltas[l + 1])

    # ---- the error at the output: delta_{L-1} = LN'(z)^T g,  g = 2 gamma r,  r = gamma n + off
    if depth == 1:
        gz[0] = acc(gz[0], LOSS_GRAD_SCALE * gdelta[0])
        gv = -LOSS_GRAD_SCALE * gdelta[0]
    else:
        w = gdelta[-1]
        gg = ln_backward(w, zs[-1], mean, rstd)
        G, extra = ln_backward_input_vjp(w, g, n, rstd, deltas[-1])
        gr = gg * (LOSS_GRAD_SCALE * lnw)
        glnw = glnw + _sum_to(LOSS_GRAD_SCALE * r * gg + n * gr, lnw)
        goff = gr
        gzL = ln_backward(torch.addcmul(G, lnw, gr), zs[-1], mean, rstd) + extra
        gz[-1] = acc(gz[-1], gzL)

    # ---- the forward chain z_l = h_l W_l, h_{l+1} = sigma(z_l)
    for l in range(depth - 1, -1, -1):
        if l < depth - 1:
            gz[l] = acc(gz[l], act_grad(act, gh[l + 1], zs[l]))
        if l > 0:
            gWs[l] = torch.baddbmm(gWs[l], hs[l].transpose(1, 2), gz[l])
            gh[l] = acc(gh[l], torch.bmm(gz[l], W[l].transpose(1, 2)))
    # layer 0: z_0 and Q W_0 came from one matmul on the stacked rows [K; Q]
    gzkq = torch.cat([gz[0], gzq0], dim=1)
    gWs[0] = torch.baddbmm(gWs[0], kq.transpose(1, 2), gzkq)
    gkq = torch.bmm(gzkq, W[0].transpose(1, 2))
    gk = gh[0]
    return gWs, (gSs if S is not None else None), gkq, gk, gq, gqb, gv, goff, gco, glnw
