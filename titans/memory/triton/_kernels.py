"""Triton kernels of the memory scan (see ``titans.memory.triton`` for the design and the contract).

Layouts (all contiguous, ``n`` = batch x head, ``c`` = chunk, b = chunk size, d = head_dim, h = hidden width):
    kq [nc, N, 2b, d] (K rows then Q rows), v / qb / off / gy / y [nc, N, b, d]
    per layer l (d_out = D_l, CA = D_l when the decay is channel-wise else 1):
        A, B, de [nc, N, b, CA],  D [nc, N, b, b] or [nc, N, b, b, D_l],  me [nc, N, b, 1],
        C1 [nc, N, 1, 2 D_l] with momentum (else [nc, N, 1, D_l]),  Be [nc, N, 1, D_l]
    state per layer [N, d_in, 2 D_l] = [W | S] (momentum) or [N, d_in, D_l] = W.
    decay toward a target (TGT, constexpr; off: the pointers are dummies and none of this is compiled):
        target per layer T_l [N, d_in, D_l] (like W),  r0 = (1 - A_0) (Q T_0) [nc, N, b, D_0] (like layer 0's read);
        their gradients: gT_l summed over the chunks, gr0 per chunk (= the gradient of layer 0's read a_0).
Every kernel computes in the state's dtype (float32 or float64); inputs of another dtype (bf16) are upcast on load.
The equations are those of ``titans.memory.step`` (one chunk, paper eqs. 13-18 with the chunk-start rule).
"""

import triton
import triton.language as tl

GELU, SILU, RELU, TANH = 0, 1, 2, 3


# ----------------------------------------------------------------------------------------------- helpers
# Only triton's builtins and the helpers below: triton.language's own @jit helpers (tl.sum, tl.zeros, ...) are
# decorated once, when triton is first imported, so they would not run in an interpreted copy of this module in a
# process that imported triton for the GPU first.
@triton.jit
def _sum(x, axis: tl.constexpr):
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def _zeros(shape: tl.constexpr, DT: tl.constexpr):
    return tl.full(shape, 0.0, DT)


@triton.jit
def _dot(a, b, DT: tl.constexpr):
    return tl.dot(a, b, input_precision="ieee", out_dtype=DT)


@triton.jit
def _sigmoid(z):
    return 1.0 / (1.0 + tl.exp(-z))


@triton.jit
def _act(z, ACT: tl.constexpr):
    """sigma(z)."""
    if ACT == 0:
        return 0.5 * z * (1.0 + tl.erf(z * 0.7071067811865476))
    elif ACT == 1:
        return z * _sigmoid(z)
    elif ACT == 2:
        return tl.maximum(z, 0.0)
    else:
        return 2.0 * _sigmoid(2.0 * z) - 1.0


@triton.jit
def _act_d1(z, ACT: tl.constexpr):
    """sigma'(z)."""
    if ACT == 0:
        return 0.5 * (1.0 + tl.erf(z * 0.7071067811865476)) + z * tl.exp(-0.5 * z * z) * 0.3989422804014327
    elif ACT == 1:
        s = _sigmoid(z)
        return s * (1.0 + z * (1.0 - s))
    elif ACT == 2:
        return tl.where(z > 0, 1.0, 0.0).to(z.dtype)
    else:
        t = 2.0 * _sigmoid(2.0 * z) - 1.0
        return 1.0 - t * t


@triton.jit
def _act_d2(z, ACT: tl.constexpr):
    """sigma''(z) (0 for relu)."""
    if ACT == 0:
        return tl.exp(-0.5 * z * z) * (2.0 - z * z) * 0.3989422804014327
    elif ACT == 1:
        s = _sigmoid(z)
        return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    elif ACT == 2:
        return z * 0.0
    else:
        t = 2.0 * _sigmoid(2.0 * z) - 1.0
        return -2.0 * t * (1.0 - t * t)


@triton.jit
def _ln(z, eps, DIM: tl.constexpr, DTRUE: tl.constexpr):
    """Parameter-free LayerNorm over the first DTRUE of the DIM columns of z [b, DIM] (the rest is zero padding
    of a head_dim that is not a power of two): (n, rstd [b, 1]), n zero on the padding."""
    keep = (tl.arange(0, DIM) < DTRUE)[None, :]
    mean = _sum(z, 1)[:, None] / DTRUE
    zc = tl.where(keep, z - mean, 0.0)
    var = _sum(zc * zc, 1)[:, None] / DTRUE
    rstd = 1.0 / tl.sqrt(var + eps)
    return zc * rstd, rstd


@triton.jit
def _ln_bwd(g, n, rstd, DIM: tl.constexpr, DTRUE: tl.constexpr):
    """LN'(z)^T g = rstd (g - mean(g) - n mean(g n)) (zero on the padding)."""
    keep = (tl.arange(0, DIM) < DTRUE)[None, :]
    out = rstd * (g - _sum(g, 1)[:, None] / DTRUE - n * (_sum(g * n, 1)[:, None] / DTRUE))
    return tl.where(keep, out, 0.0)


@triton.jit
def _ld(ptr, off, DT: tl.constexpr):
    return tl.load(ptr + off).to(DT)


@triton.jit
def _coef(ptr, base, rows, cols, CA: tl.constexpr, DT: tl.constexpr):
    """A row-indexed coefficient [rows, CA] at ``base``: the [len(rows), len(cols)] tile when CA > 1, else the
    [len(rows), 1] column (broadcast over the channels)."""
    if CA > 1:
        return tl.load(ptr + base + rows[:, None] * CA + cols[None, :]).to(DT)
    else:
        return tl.load(ptr + base + rows).to(DT)[:, None]


@triton.jit
def _dmat(ptr, base, rows, cols, BT: tl.constexpr, CA: tl.constexpr, DT: tl.constexpr):
    """D [b, b] (CA = 1) or its channel tile [b, b, len(cols)] (channel-wise decay)."""
    if CA > 1:
        return tl.load(ptr + base + (rows[:, None, None] * BT + rows[None, :, None]) * CA
                       + cols[None, None, :]).to(DT)
    else:
        return tl.load(ptr + base + rows[:, None] * BT + rows[None, :]).to(DT)


@triton.jit
def _dread(Dm, x, CA: tl.constexpr, DT: tl.constexpr):
    """sum_i D[t, i(, c)] x[i, c]: the masked attention-like term of the read."""
    if CA > 1:
        return _sum(Dm * x[None, :, :], axis=1)
    else:
        return _dot(Dm, x, DT)


@triton.jit
def _dread_t(Dm, g, CA: tl.constexpr, DT: tl.constexpr):
    """sum_t D[t, i(, c)] g[t, c] (the transpose of ``_dread``)."""
    if CA > 1:
        return _sum(Dm * g[:, None, :], axis=0)
    else:
        return _dot(tl.trans(Dm), g, DT)


# ----------------------------------------------------------------------------------------------- depth 1
# One program per (n, column tile): a matrix memory's columns are independent (z = K W, delta = 2 (z - V), the
# read and the update act column by column), so each program keeps its [d, BC] tiles of W and S in registers for
# the whole chunk loop. Column reductions (gradients of K, Q, D and of scalar coefficients) are written per
# column tile and summed by the caller.
@triton.jit
def linear_fwd_kernel(ws0, kq, v, A, B, Dc, C1, Be, de, me, tg, r0, y, ws_out, saved,
                      nc, nc_upd, N, group,
                      D: tl.constexpr, BC: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
                      DECAY: tl.constexpr, CA: tl.constexpr, SAVE: tl.constexpr, DT: tl.constexpr,
                      TGT: tl.constexpr):
    """TGT: decay toward the target tg [N, d, d] (W' += (1 - Ae) T); r0 [nc, N, b, d] = (1 - A) (Q T), added to
    the read."""
    n = tl.program_id(0).to(tl.int64)
    jc = tl.program_id(1)
    WSW: tl.constexpr = 2 * D if MOM else D
    C1W: tl.constexpr = 2 * D if MOM else D
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    cols = jc * BC + tl.arange(0, BC)
    st = n * D * WSW + rd[:, None] * WSW + cols[None, :]
    W = _ld(ws0, st, DT)
    S = W
    if MOM:
        S = _ld(ws0, st + D, DT)
    Tg = W
    if TGT:
        Tg = _ld(tg, n * D * D + rd[:, None] * D + cols[None, :], DT)
    for c in range(nc):
        cn = c * N + n
        if SAVE:
            if c % group == 0:
                sv = (c // group) * N * D * WSW + st
                tl.store(saved + sv, W)
                if MOM:
                    tl.store(saved + sv + D, S)
        K = _ld(kq, cn * 2 * BT * D + rt[:, None] * D + rd[None, :], DT)
        Q = _ld(kq, cn * 2 * BT * D + (BT + rt[:, None]) * D + rd[None, :], DT)
        bd = cn * BT * D + rt[:, None] * D + cols[None, :]
        delta = 2.0 * (_dot(K, W, DT) - _ld(v, bd, DT))
        a = _dot(Q, W, DT)
        if DECAY:
            a = a * _coef(A, cn * BT * CA, rt, cols, CA, DT)
        if MOM:
            a += _coef(B, cn * BT * CA, rt, cols, CA, DT) * _dot(Q, S, DT)
        a -= _dread(_dmat(Dc, cn * BT * BT * CA, rt, cols, BT, CA, DT), delta, CA, DT)
        if TGT:
            a += _ld(r0, bd, DT)
        tl.store(y + bd, a)
        if c < nc_upd:
            dl = _coef(de, cn * BT * CA, rt, cols, CA, DT) * delta
            c1w = _ld(C1, cn * C1W + cols, DT)
            Wn = c1w[None, :] * W - _dot(tl.trans(K), dl, DT)
            if TGT:
                Wn += (1.0 - c1w)[None, :] * Tg
            if MOM:
                Wn += _ld(Be, cn * D + cols, DT)[None, :] * S
                ml = _ld(me, cn * BT + rt, DT)[:, None] * delta
                S = _ld(C1, cn * C1W + D + cols, DT)[None, :] * S - _dot(tl.trans(K), ml, DT)
            W = Wn
    tl.store(ws_out + st, W)
    if MOM:
        tl.store(ws_out + st + D, S)


@triton.jit
def linear_bwd_kernel(kq, v, A, B, Dc, C1, Be, de, me, tg, gy, saved, scratch, gws,
                      gkq_p, gv, gA, gB, gD, gC1, gBe, gde, gme, gtg, gr0,
                      nc, nc_upd, N, group, n_saved,
                      D: tl.constexpr, BC: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
                      DECAY: tl.constexpr, CA: tl.constexpr, DT: tl.constexpr, TGT: tl.constexpr):
    """gws holds the gradient of the final state on entry and that of the initial state on exit.
    Per column tile jc: gkq_p [ncol, nc, N, 2b, d]; gA, gB, gde, gD are per-tile partial sums when CA = 1
    ([ncol, ...]) and full tensors when CA > 1; gme [ncol, nc, N, b, 1]. TGT: gtg [N, d, d] (summed over the
    chunks, each tile its columns) and gr0 [nc, N, b, d] (= the gradient of the read, a)."""
    n = tl.program_id(0).to(tl.int64)
    jc = tl.program_id(1)
    WSW: tl.constexpr = 2 * D if MOM else D
    C1W: tl.constexpr = 2 * D if MOM else D
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    cols = jc * BC + tl.arange(0, BC)
    st = n * D * WSW + rd[:, None] * WSW + cols[None, :]
    GW = _ld(gws, st, DT)
    GS = GW
    if MOM:
        GS = _ld(gws, st + D, DT)
    Tg = GW
    gT = GW
    if TGT:
        Tg = _ld(tg, n * D * D + rd[:, None] * D + cols[None, :], DT)
        gT = _zeros((D, BC), DT)
    part = jc * nc * N  # leading index of the per-tile partial outputs
    for gi in range(n_saved):
        g = n_saved - 1 - gi
        c0 = g * group
        c1 = tl.minimum(nc, c0 + group)
        # the group's chunk-start states, recomputed from the saved one into the scratch slots
        sv = g * N * D * WSW + st
        W = _ld(saved, sv, DT)
        S = W
        if MOM:
            S = _ld(saved, sv + D, DT)
        for c in range(c0, c1):
            sc = ((n * group + (c - c0)) * D + rd[:, None]) * WSW + cols[None, :]
            tl.store(scratch + sc, W)
            if MOM:
                tl.store(scratch + sc + D, S)
            if c < c1 - 1:
                cn = c * N + n
                K = _ld(kq, cn * 2 * BT * D + rt[:, None] * D + rd[None, :], DT)
                bd = cn * BT * D + rt[:, None] * D + cols[None, :]
                delta = 2.0 * (_dot(K, W, DT) - _ld(v, bd, DT))
                dl = _coef(de, cn * BT * CA, rt, cols, CA, DT) * delta
                Wn = _ld(C1, cn * C1W + cols, DT)[None, :] * W - _dot(tl.trans(K), dl, DT)
                if TGT:
                    Wn += (1.0 - _ld(C1, cn * C1W + cols, DT))[None, :] * Tg
                if MOM:
                    Wn += _ld(Be, cn * D + cols, DT)[None, :] * S
                    ml = _ld(me, cn * BT + rt, DT)[:, None] * delta
                    S = _ld(C1, cn * C1W + D + cols, DT)[None, :] * S - _dot(tl.trans(K), ml, DT)
                W = Wn
        for ci in range(c1 - c0):
            c = c1 - 1 - ci
            cn = c * N + n
            sc = ((n * group + (c - c0)) * D + rd[:, None]) * WSW + cols[None, :]
            W = _ld(scratch, sc, DT)
            S = W
            if MOM:
                S = _ld(scratch, sc + D, DT)
            K = _ld(kq, cn * 2 * BT * D + rt[:, None] * D + rd[None, :], DT)
            Q = _ld(kq, cn * 2 * BT * D + (BT + rt[:, None]) * D + rd[None, :], DT)
            bd = cn * BT * D + rt[:, None] * D + cols[None, :]
            delta = 2.0 * (_dot(K, W, DT) - _ld(v, bd, DT))
            deT = _coef(de, cn * BT * CA, rt, cols, CA, DT)
            # ---- the update WS' = C1 * WS + [Be S | 0] - K^T [de delta | me delta]
            gdelta = _zeros((BT, BC), DT)
            gh0 = _zeros((BT, D), DT)
            nGW = GW
            nGS = GS
            if c < nc_upd:
                c1w = _ld(C1, cn * C1W + cols, DT)
                if TGT:  # + (1 - Ae) T
                    tl.store(gC1 + cn * C1W + cols, _sum((W - Tg) * GW, axis=0))
                    gT += (1.0 - c1w)[None, :] * GW
                else:
                    tl.store(gC1 + cn * C1W + cols, _sum(W * GW, axis=0))
                nGW = c1w[None, :] * GW
                hP = _dot(K, GW, DT)
                gdelta = -(deT * hP)
                gdeT = -(delta * hP)
                gh0 = -_dot(deT * delta, tl.trans(GW), DT)
                if MOM:
                    c1s = _ld(C1, cn * C1W + D + cols, DT)
                    tl.store(gC1 + cn * C1W + D + cols, _sum(S * GS, axis=0))
                    tl.store(gBe + cn * D + cols, _sum(S * GW, axis=0))
                    nGS = c1s[None, :] * GS + _ld(Be, cn * D + cols, DT)[None, :] * GW
                    meT = _ld(me, cn * BT + rt, DT)[:, None]
                    hR = _dot(K, GS, DT)
                    gdelta -= meT * hR
                    tl.store(gme + (part + cn) * BT + rt, -_sum(delta * hR, axis=1))
                    gh0 -= _dot(meT * delta, tl.trans(GS), DT)
                if CA > 1:
                    tl.store(gde + cn * BT * CA + rt[:, None] * CA + cols[None, :], gdeT)
                else:
                    tl.store(gde + (part + cn) * BT + rt, _sum(gdeT, axis=1))
            # ---- the read a = A (Q W) + B (Q S) - D delta (+ r0)
            ga = _ld(gy, bd, DT)
            if TGT:
                tl.store(gr0 + bd, ga)
            gc = ga
            cW = _dot(Q, W, DT)
            if DECAY:
                if CA > 1:
                    tl.store(gA + cn * BT * CA + rt[:, None] * CA + cols[None, :], ga * cW)
                else:
                    tl.store(gA + (part + cn) * BT + rt, _sum(ga * cW, axis=1))
                gc = ga * _coef(A, cn * BT * CA, rt, cols, CA, DT)
            gBa = ga
            if MOM:
                eS = _dot(Q, S, DT)
                if CA > 1:
                    tl.store(gB + cn * BT * CA + rt[:, None] * CA + cols[None, :], ga * eS)
                else:
                    tl.store(gB + (part + cn) * BT + rt, _sum(ga * eS, axis=1))
                gBa = ga * _coef(B, cn * BT * CA, rt, cols, CA, DT)
            Dm = _dmat(Dc, cn * BT * BT * CA, rt, cols, BT, CA, DT)
            if CA > 1:
                tl.store(gD + cn * BT * BT * CA + (rt[:, None, None] * BT + rt[None, :, None]) * CA
                         + cols[None, None, :], -(ga[:, None, :] * delta[None, :, :]))
            else:
                tl.store(gD + (part + cn) * BT * BT + rt[:, None] * BT + rt[None, :],
                         -_dot(ga, tl.trans(delta), DT))
            gdelta -= _dread_t(Dm, ga, CA, DT)
            # ---- delta = 2 (K W - V)
            gz = 2.0 * gdelta
            tl.store(gv + bd, -gz)
            nGW += _dot(tl.trans(K), gz, DT) + _dot(tl.trans(Q), gc, DT)
            gq = _dot(gc, tl.trans(W), DT)
            if MOM:
                nGS += _dot(tl.trans(Q), gBa, DT)
                gq += _dot(gBa, tl.trans(S), DT)
            gk = _dot(gz, tl.trans(W), DT) + gh0
            pk = (part + cn) * 2 * BT * D
            tl.store(gkq_p + pk + rt[:, None] * D + rd[None, :], gk)
            tl.store(gkq_p + pk + (BT + rt[:, None]) * D + rd[None, :], gq)
            GW = nGW
            GS = nGS
    tl.store(gws + st, GW)
    if MOM:
        tl.store(gws + st + D, GS)
    if TGT:
        tl.store(gtg + n * D * D + rd[:, None] * D + cols[None, :], gT)


# ----------------------------------------------------------------------------------------------- depth 2
# One program per n. The state of a deep memory ([d, 2h] and [h, 2d], h = 4d: 256 KiB per head at d = 64)
# does not fit on chip, so it lives in a per-program workspace in global memory (L2-resident on a GPU) and
# every chunk streams it in tiles of BH hidden units: pass 1 forms z_1 = sigma(K W_0) W_1 (a reduction over the
# hidden width), the LayerNorm gives delta_1, pass 2 forms delta_0, the read and the update tile by tile.
# The backward (4 passes per chunk) follows step.chunk_backward term by term.
@triton.jit
def _tile_ptrs(hc, rd, D: tl.constexpr, W0S: tl.constexpr, W1S: tl.constexpr):
    """Offsets of hidden tile hc: columns hc of layer 0's [d, .] state, rows hc of layer 1's [h, .] state."""
    return rd[:, None] * W0S + hc[None, :], hc[:, None] * W1S + rd[None, :]


@triton.jit
def _copy_state(src0, src1, dst0, dst1, D: tl.constexpr, HID: tl.constexpr, BH: tl.constexpr,
                MOM: tl.constexpr):
    W0S: tl.constexpr = 2 * HID if MOM else HID
    W1S: tl.constexpr = 2 * D if MOM else D
    rd = tl.arange(0, D)
    for j in range(HID // BH):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        tl.store(dst0 + o0, tl.load(src0 + o0))
        tl.store(dst1 + o1, tl.load(src1 + o1))
        if MOM:
            tl.store(dst0 + o0 + HID, tl.load(src0 + o0 + HID))
            tl.store(dst1 + o1 + D, tl.load(src1 + o1 + D))


@triton.jit
def _deep_step(s0, s1, d0, d1, kq, qb, off, lnw, A0, B0, D0, C1a, Be0, de0, me0, A1, B1, D1, C1b, Be1, de1, me1,
               t0, t1, r0, y, cn, upd, eps,
               D: tl.constexpr, HID: tl.constexpr, BH: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
               DECAY: tl.constexpr, CA0: tl.constexpr, CA1: tl.constexpr, ACT: tl.constexpr, READ: tl.constexpr,
               DT: tl.constexpr, DTRUE: tl.constexpr, TGT: tl.constexpr):
    """One chunk forward from the state at (s0, s1): y (when READ) and, when ``upd``, the chunk-end state written
    to (d0, d1) (which may alias the source: each tile is read before it is written). TGT: decay toward the
    targets (t0 [d, h], t1 [h, d] of this program): W_l' += (1 - Ae_l) T_l, a_1 += (1 - A_1) (x_1 T_1), and
    a_0 += r0 (r0 [nc, N, b, h] = (1 - A_0) (Q T_0), precomputed by the caller)."""
    W0S: tl.constexpr = 2 * HID if MOM else HID
    W1S: tl.constexpr = 2 * D if MOM else D
    C1AW: tl.constexpr = 2 * HID if MOM else HID
    C1BW: tl.constexpr = 2 * D if MOM else D
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    rows = rt[:, None] * D + rd[None, :]
    K = _ld(kq, cn * 2 * BT * D + rows, DT)
    Q = _ld(kq, cn * 2 * BT * D + BT * D + rows, DT)
    lw = _ld(lnw, rd, DT)[None, :]
    # pass 1: z_1 = sigma(K W_0) W_1
    z1 = _zeros((BT, D), DT)
    for j in range(HID // BH):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        z1 += _dot(_act(_dot(K, _ld(s0, o0, DT), DT), ACT), _ld(s1, o1, DT), DT)
    nz, rstd = _ln(z1, eps, D, DTRUE)
    r = _ld(off, cn * BT * D + rows, DT) + lw * nz
    delta1 = _ln_bwd(2.0 * lw * r, nz, rstd, D, DTRUE)
    de1t = _coef(de1, cn * BT * CA1, rt, rd, CA1, DT)
    tl.debug_barrier()
    # pass 2: delta_0, the read of layer 0 and the update, tile by tile
    c1 = _zeros((BT, D), DT)
    e1 = _zeros((BT, D), DT)
    xt1 = _zeros((BT, D), DT)
    s1m = _zeros((BT, BT), DT)
    for j in range(HID // BH):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        W0j = _ld(s0, o0, DT)
        W1j = _ld(s1, o1, DT)
        S0j = W0j
        S1j = W1j
        if MOM:
            S0j = _ld(s0, o0 + HID, DT)
            S1j = _ld(s1, o1 + D, DT)
        T1j = W1j
        if TGT:
            T1j = _ld(t1, hc[:, None] * D + rd[None, :], DT)
        z0 = _dot(K, W0j, DT)
        h1 = _act(z0, ACT)
        delta0 = _act_d1(z0, ACT) * _dot(delta1, tl.trans(W1j), DT)
        if READ:
            a0 = _dot(Q, W0j, DT)
            if DECAY:
                a0 = a0 * _coef(A0, cn * BT * CA0, rt, hc, CA0, DT)
            if MOM:
                a0 += _coef(B0, cn * BT * CA0, rt, hc, CA0, DT) * _dot(Q, S0j, DT)
            if TGT:
                a0 += _ld(r0, cn * BT * HID + rt[:, None] * HID + hc[None, :], DT)
            a0 -= _dread(_dmat(D0, cn * BT * BT * CA0, rt, hc, BT, CA0, DT), delta0, CA0, DT)
            x1 = _act(a0, ACT)
            c1 += _dot(x1, W1j, DT)
            if MOM:
                e1 += _dot(x1, S1j, DT)
            if TGT:
                xt1 += _dot(x1, T1j, DT)
            s1m += _dot(x1, tl.trans(h1), DT)
        if upd:
            dl0 = _coef(de0, cn * BT * CA0, rt, hc, CA0, DT) * delta0
            W0n = _ld(C1a, cn * C1AW + hc, DT)[None, :] * W0j - _dot(tl.trans(K), dl0, DT)
            W1n = _ld(C1b, cn * C1BW + rd, DT)[None, :] * W1j - _dot(tl.trans(h1), de1t * delta1, DT)
            if TGT:  # + (1 - Ae) T
                W0n += (1.0 - _ld(C1a, cn * C1AW + hc, DT))[None, :] * _ld(t0, rd[:, None] * HID + hc[None, :], DT)
                W1n += (1.0 - _ld(C1b, cn * C1BW + rd, DT))[None, :] * T1j
            S0n = S0j
            S1n = S1j
            if MOM:
                W0n += _ld(Be0, cn * HID + hc, DT)[None, :] * S0j
                W1n += _ld(Be1, cn * D + rd, DT)[None, :] * S1j
                ml0 = _ld(me0, cn * BT + rt, DT)[:, None] * delta0
                S0n = _ld(C1a, cn * C1AW + HID + hc, DT)[None, :] * S0j - _dot(tl.trans(K), ml0, DT)
                ml1 = _ld(me1, cn * BT + rt, DT)[:, None] * delta1
                S1n = _ld(C1b, cn * C1BW + D + rd, DT)[None, :] * S1j - _dot(tl.trans(h1), ml1, DT)
            tl.debug_barrier()
            tl.store(d0 + o0, W0n)
            tl.store(d1 + o1, W1n)
            if MOM:
                tl.store(d0 + o0 + HID, S0n)
                tl.store(d1 + o1 + D, S1n)
    if READ:
        a1 = c1
        if DECAY:
            a1 = a1 * _coef(A1, cn * BT * CA1, rt, rd, CA1, DT)
            if TGT:  # (1 - A_1) (x_1 T_1)
                a1 += xt1 - _coef(A1, cn * BT * CA1, rt, rd, CA1, DT) * xt1
        if MOM:
            a1 += _coef(B1, cn * BT * CA1, rt, rd, CA1, DT) * e1
        Dm1 = _dmat(D1, cn * BT * BT * CA1, rt, rd, BT, CA1, DT)
        if CA1 > 1:
            Ds1 = Dm1 * s1m[:, :, None]
        else:
            Ds1 = Dm1 * s1m
        a1 -= _dread(Ds1, delta1, CA1, DT)
        na, _ = _ln(a1, eps, D, DTRUE)
        tl.store(y + cn * BT * D + rows, _ld(qb, cn * BT * D + rows, DT) + lw * na)
    tl.debug_barrier()


@triton.jit
def deep_fwd_kernel(kq, qb, off, lnw, A0, B0, D0, C1a, Be0, de0, me0, A1, B1, D1, C1b, Be1, de1, me1,
                    tg0, tg1, r0, y, ws0, ws1, saved0, saved1, nc, nc_upd, N, group, eps,
                    D: tl.constexpr, HID: tl.constexpr, BH: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
                    DECAY: tl.constexpr, CA0: tl.constexpr, CA1: tl.constexpr, ACT: tl.constexpr,
                    SAVE: tl.constexpr, DT: tl.constexpr, DTRUE: tl.constexpr, TGT: tl.constexpr):
    """ws0 / ws1 hold the initial state on entry and the final state on exit (updated in place). TGT: the decay
    targets tg0 [N, d, h], tg1 [N, h, d] and r0 [nc, N, b, h] (see ``_deep_step``)."""
    n = tl.program_id(0).to(tl.int64)
    W0S: tl.constexpr = 2 * HID if MOM else HID
    W1S: tl.constexpr = 2 * D if MOM else D
    s0 = ws0 + n * D * W0S
    s1 = ws1 + n * HID * W1S
    for c in range(nc):
        if SAVE:
            if c % group == 0:
                k = c // group
                _copy_state(s0, s1, saved0 + (k * N + n) * D * W0S, saved1 + (k * N + n) * HID * W1S,
                            D, HID, BH, MOM)
                tl.debug_barrier()
        _deep_step(s0, s1, s0, s1, kq, qb, off, lnw + n * D, A0, B0, D0, C1a, Be0, de0, me0,
                   A1, B1, D1, C1b, Be1, de1, me1, tg0 + n * D * HID, tg1 + n * HID * D, r0, y, c * N + n,
                   c < nc_upd, eps, D, HID, BH, BT, MOM, DECAY, CA0, CA1, ACT, True, DT, DTRUE, TGT)


@triton.jit
def _store_coef_grad(ptr, base, rows, cols, val, CA: tl.constexpr):
    """Store the gradient of a row-indexed coefficient: the tile when CA > 1 (cols index the channels)."""
    tl.store(ptr + base + rows[:, None] * CA + cols[None, :], val)


@triton.jit
def _deep_chunk_bwd(s0, s1, g0, g1, scr, kq, off, lnw, gy, A0, B0, D0, C1a, Be0, de0, me0,
                    A1, B1, D1, C1b, Be1, de1, me1, t0, t1, r0,
                    gkq, goff, gA0, gB0, gD0, gC1a, gBe0, gde0, gme0, gA1, gB1, gD1, gC1b, gBe1, gde1, gme1,
                    gt0, gt1, gr0, cn, upd, eps,
                    D: tl.constexpr, HID: tl.constexpr, BH: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
                    DECAY: tl.constexpr, CA0: tl.constexpr, CA1: tl.constexpr, ACT: tl.constexpr,
                    DT: tl.constexpr, DTRUE: tl.constexpr, TGT: tl.constexpr):
    """VJP of one chunk (step.chunk_backward, depth 2) at the chunk-start state (s0, s1); (g0, g1) hold the
    gradient of the chunk-end state on entry and that of the chunk-start state on exit. Returns this chunk's
    contribution to the gradient of the LayerNorm scale. TGT: the targets (t0, t1 of this program) and r0 as in
    ``_deep_step``; this chunk's share of their gradients is added to (gt0, gt1) and its gradient of r0 (= that of
    a_0) stored to gr0."""
    W0S: tl.constexpr = 2 * HID if MOM else HID
    W1S: tl.constexpr = 2 * D if MOM else D
    C1AW: tl.constexpr = 2 * HID if MOM else HID
    C1BW: tl.constexpr = 2 * D if MOM else D
    NT: tl.constexpr = HID // BH
    rd = tl.arange(0, D)
    rt = tl.arange(0, BT)
    rows = rt[:, None] * D + rd[None, :]
    srows = rt[:, None] * HID
    K = _ld(kq, cn * 2 * BT * D + rows, DT)
    Q = _ld(kq, cn * 2 * BT * D + BT * D + rows, DT)
    lw = _ld(lnw, rd, DT)[None, :]
    # ---- pass A: z_1, and the parts of the layer-1 update's VJP that sum over the hidden rows
    z1 = _zeros((BT, D), DT)
    hP1 = _zeros((BT, D), DT)
    hR1 = _zeros((BT, D), DT)
    gC1bw = _zeros((D,), DT)
    gC1bs = _zeros((D,), DT)
    gBe1v = _zeros((D,), DT)
    for j in range(NT):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        h1 = _act(_dot(K, _ld(s0, o0, DT), DT), ACT)
        W1j = _ld(s1, o1, DT)
        z1 += _dot(h1, W1j, DT)
        if upd:
            G1W = _ld(g1, o1, DT)
            hP1 += _dot(h1, G1W, DT)
            if TGT:  # W_1' += (1 - Ae) T_1
                gC1bw += _sum((W1j - _ld(t1, hc[:, None] * D + rd[None, :], DT)) * G1W, axis=0)
            else:
                gC1bw += _sum(W1j * G1W, axis=0)
            if MOM:
                G1S = _ld(g1, o1 + D, DT)
                S1j = _ld(s1, o1 + D, DT)
                hR1 += _dot(h1, G1S, DT)
                gC1bs += _sum(S1j * G1S, axis=0)
                gBe1v += _sum(S1j * G1W, axis=0)
    nz, rstd = _ln(z1, eps, D, DTRUE)
    r = _ld(off, cn * BT * D + rows, DT) + lw * nz
    gl = 2.0 * lw * r
    delta1 = _ln_bwd(gl, nz, rstd, D, DTRUE)
    gdelta1 = _zeros((BT, D), DT)
    de1t = _coef(de1, cn * BT * CA1, rt, rd, CA1, DT)
    rhs1W = de1t * delta1
    rhs1S = rhs1W
    if upd:
        gdelta1 = -(de1t * hP1)
        if CA1 > 1:
            _store_coef_grad(gde1, cn * BT * CA1, rt, rd, -(delta1 * hP1), CA1)
        else:
            tl.store(gde1 + cn * BT + rt, -_sum(delta1 * hP1, axis=1))
        tl.store(gC1b + cn * C1BW + rd, gC1bw)
        if MOM:
            me1t = _ld(me1, cn * BT + rt, DT)[:, None]
            gdelta1 -= me1t * hR1
            rhs1S = me1t * delta1
            tl.store(gme1 + cn * BT + rt, -_sum(delta1 * hR1, axis=1))
            tl.store(gC1b + cn * C1BW + D + rd, gC1bs)
            tl.store(gBe1 + cn * D + rd, gBe1v)
    # ---- pass B: the read's reductions over the hidden width (c_1, e_1, s_1 = x_1 h_1^T, x_1 T_1)
    c1 = _zeros((BT, D), DT)
    e1 = _zeros((BT, D), DT)
    xt1 = _zeros((BT, D), DT)
    s1m = _zeros((BT, BT), DT)
    for j in range(NT):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        W0j = _ld(s0, o0, DT)
        W1j = _ld(s1, o1, DT)
        z0 = _dot(K, W0j, DT)
        delta0 = _act_d1(z0, ACT) * _dot(delta1, tl.trans(W1j), DT)
        a0 = _dot(Q, W0j, DT)
        if DECAY:
            a0 = a0 * _coef(A0, cn * BT * CA0, rt, hc, CA0, DT)
        if MOM:
            a0 += _coef(B0, cn * BT * CA0, rt, hc, CA0, DT) * _dot(Q, _ld(s0, o0 + HID, DT), DT)
        if TGT:
            a0 += _ld(r0, cn * BT * HID + rt[:, None] * HID + hc[None, :], DT)
        a0 -= _dread(_dmat(D0, cn * BT * BT * CA0, rt, hc, BT, CA0, DT), delta0, CA0, DT)
        x1 = _act(a0, ACT)
        c1 += _dot(x1, W1j, DT)
        if MOM:
            e1 += _dot(x1, _ld(s1, o1 + D, DT), DT)
        if TGT:
            xt1 += _dot(x1, _ld(t1, hc[:, None] * D + rd[None, :], DT), DT)
        s1m += _dot(x1, tl.trans(_act(z0, ACT)), DT)
    # ---- the output y = qb + gamma LN(a_1) and layer 1's read a_1 = A c_1 + B e_1 - (D * s_1) delta_1
    Dm1 = _dmat(D1, cn * BT * BT * CA1, rt, rd, BT, CA1, DT)
    if CA1 > 1:
        Ds1 = Dm1 * s1m[:, :, None]
    else:
        Ds1 = Dm1 * s1m
    a1 = c1
    cx1 = c1  # what A_1 multiplies: c_1, or c_1 - x_1 T_1 with a decay target
    if DECAY:
        A1t = _coef(A1, cn * BT * CA1, rt, rd, CA1, DT)
        if TGT:  # A_1 c_1 + (1 - A_1) (x_1 T_1)
            cx1 = c1 - xt1
            a1 = xt1 + A1t * cx1
        else:
            a1 = a1 * A1t
    if MOM:
        B1t = _coef(B1, cn * BT * CA1, rt, rd, CA1, DT)
        a1 += B1t * e1
    a1 -= _dread(Ds1, delta1, CA1, DT)
    na, rstd2 = _ln(a1, eps, D, DTRUE)
    gyt = _ld(gy, cn * BT * D + rows, DT)
    glnw = _sum(gyt * na, axis=0)
    ga1 = _ln_bwd(gyt * lw, na, rstd2, D, DTRUE)
    gc1 = ga1
    gat1 = ga1  # (1 - A_1) ga_1: the gradient of x_1 T_1
    if DECAY:
        if CA1 > 1:
            _store_coef_grad(gA1, cn * BT * CA1, rt, rd, ga1 * cx1, CA1)
        else:
            tl.store(gA1 + cn * BT + rt, _sum(ga1 * cx1, axis=1))
        gc1 = A1t * ga1
        if TGT:
            gat1 = ga1 - gc1
    gBa1 = ga1
    if MOM:
        if CA1 > 1:
            _store_coef_grad(gB1, cn * BT * CA1, rt, rd, ga1 * e1, CA1)
        else:
            tl.store(gB1 + cn * BT + rt, _sum(ga1 * e1, axis=1))
        gBa1 = B1t * ga1
    if CA1 > 1:
        gDs1 = -(ga1[:, None, :] * delta1[None, :, :])
        tl.store(gD1 + cn * BT * BT * CA1 + (rt[:, None, None] * BT + rt[None, :, None]) * CA1 + rd[None, None, :],
                 gDs1 * s1m[:, :, None])
        gs1 = _sum(gDs1 * Dm1, axis=2)
    else:
        gDs1 = -_dot(ga1, tl.trans(delta1), DT)
        tl.store(gD1 + cn * BT * BT + rt[:, None] * BT + rt[None, :], gDs1 * s1m)
        gs1 = gDs1 * Dm1
    gdelta1 -= _dread_t(Ds1, ga1, CA1, DT)
    tl.debug_barrier()
    # ---- pass C: layer 0 (read, update, delta chain), the new state gradients except the forward-chain terms
    gh0 = _zeros((BT, D), DT)
    gq = _zeros((BT, D), DT)
    gDs0 = _zeros((BT, BT), DT)
    gA0v = _zeros((BT,), DT)
    gB0v = _zeros((BT,), DT)
    gde0v = _zeros((BT,), DT)
    gme0v = _zeros((BT,), DT)
    for j in range(NT):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        W0j = _ld(s0, o0, DT)
        W1j = _ld(s1, o1, DT)
        S0j = W0j
        S1j = W1j
        if MOM:
            S0j = _ld(s0, o0 + HID, DT)
            S1j = _ld(s1, o1 + D, DT)
        z0 = _dot(K, W0j, DT)
        h1 = _act(z0, ACT)
        p0 = _dot(delta1, tl.trans(W1j), DT)
        delta0 = _act_d1(z0, ACT) * p0
        c0 = _dot(Q, W0j, DT)
        a0 = c0
        e0 = c0
        if DECAY:
            A0t = _coef(A0, cn * BT * CA0, rt, hc, CA0, DT)
            a0 = a0 * A0t
        if MOM:
            B0t = _coef(B0, cn * BT * CA0, rt, hc, CA0, DT)
            e0 = _dot(Q, S0j, DT)
            a0 += B0t * e0
        if TGT:
            a0 += _ld(r0, cn * BT * HID + rt[:, None] * HID + hc[None, :], DT)
        Dm0 = _dmat(D0, cn * BT * BT * CA0, rt, hc, BT, CA0, DT)
        a0 -= _dread(Dm0, delta0, CA0, DT)
        x1 = _act(a0, ACT)
        # layer 1 (rows hc): s_1 = x_1 h_1^T, [c_1 | e_1] = x_1 [W_1 | S_1], and the update's h_1 term
        G1W = _ld(g1, o1, DT)
        G1S = G1W
        if MOM:
            G1S = _ld(g1, o1 + D, DT)
        gh1 = _dot(tl.trans(gs1), x1, DT)
        gx = _dot(gs1, h1, DT) + _dot(gc1, tl.trans(W1j), DT)
        N1W = G1W
        N1S = G1S
        if MOM:
            gx += _dot(gBa1, tl.trans(S1j), DT)
        if TGT:  # a_1 += (1 - A_1) (x_1 T_1) and W_1' += (1 - Ae) T_1: T_1's gradient, rows hc
            ot1 = hc[:, None] * D + rd[None, :]
            gx += _dot(gat1, tl.trans(_ld(t1, ot1, DT)), DT)
            gT1 = _dot(tl.trans(x1), gat1, DT)
            if upd:
                gT1 += (1.0 - _ld(C1b, cn * C1BW + rd, DT))[None, :] * G1W
            tl.store(gt1 + ot1, _ld(gt1, ot1, DT) + gT1)
        if upd:
            gh1 -= _dot(rhs1W, tl.trans(G1W), DT)
            N1W = _ld(C1b, cn * C1BW + rd, DT)[None, :] * G1W
            if MOM:
                gh1 -= _dot(rhs1S, tl.trans(G1S), DT)
                N1S = _ld(C1b, cn * C1BW + D + rd, DT)[None, :] * G1S + _ld(Be1, cn * D + rd, DT)[None, :] * G1W
        N1W += _dot(tl.trans(x1), gc1, DT)
        if MOM:
            N1S += _dot(tl.trans(x1), gBa1, DT)
        ga0 = _act_d1(a0, ACT) * gx
        # layer 0's read a_0 = A c_0 + B e_0 - D delta_0 (D includes the scores Q K^T) (+ r0)
        if TGT:
            tl.store(gr0 + cn * BT * HID + rt[:, None] * HID + hc[None, :], ga0)
        gc0 = ga0
        if DECAY:
            if CA0 > 1:
                _store_coef_grad(gA0, cn * BT * CA0, rt, hc, ga0 * c0, CA0)
            else:
                gA0v += _sum(ga0 * c0, axis=1)
            gc0 = A0t * ga0
        gBa0 = ga0
        if MOM:
            if CA0 > 1:
                _store_coef_grad(gB0, cn * BT * CA0, rt, hc, ga0 * e0, CA0)
            else:
                gB0v += _sum(ga0 * e0, axis=1)
            gBa0 = B0t * ga0
        if CA0 > 1:
            tl.store(gD0 + cn * BT * BT * CA0 + (rt[:, None, None] * BT + rt[None, :, None]) * CA0
                     + hc[None, None, :], -(ga0[:, None, :] * delta0[None, :, :]))
        else:
            gDs0 -= _dot(ga0, tl.trans(delta0), DT)
        gdelta0 = -_dread_t(Dm0, ga0, CA0, DT)
        # layer 0's update W_0' = C1 W_0 + Be S_0 - K^T (de delta_0), S_0' = Ee S_0 - K^T (me delta_0)
        G0W = _ld(g0, o0, DT)
        G0S = G0W
        if MOM:
            G0S = _ld(g0, o0 + HID, DT)
        N0W = G0W
        N0S = G0S
        if upd:
            de0t = _coef(de0, cn * BT * CA0, rt, hc, CA0, DT)
            hP0 = _dot(K, G0W, DT)
            gdelta0 -= de0t * hP0
            if CA0 > 1:
                _store_coef_grad(gde0, cn * BT * CA0, rt, hc, -(delta0 * hP0), CA0)
            else:
                gde0v -= _sum(delta0 * hP0, axis=1)
            if TGT:  # W_0' += (1 - Ae) T_0
                ot0 = rd[:, None] * HID + hc[None, :]
                tl.store(gC1a + cn * C1AW + hc, _sum((W0j - _ld(t0, ot0, DT)) * G0W, axis=0))
                tl.store(gt0 + ot0, _ld(gt0, ot0, DT) + (1.0 - _ld(C1a, cn * C1AW + hc, DT))[None, :] * G0W)
            else:
                tl.store(gC1a + cn * C1AW + hc, _sum(W0j * G0W, axis=0))
            N0W = _ld(C1a, cn * C1AW + hc, DT)[None, :] * G0W
            gh0 -= _dot(de0t * delta0, tl.trans(G0W), DT)
            if MOM:
                me0t = _ld(me0, cn * BT + rt, DT)[:, None]
                hR0 = _dot(K, G0S, DT)
                gdelta0 -= me0t * hR0
                gme0v -= _sum(delta0 * hR0, axis=1)
                tl.store(gC1a + cn * C1AW + HID + hc, _sum(S0j * G0S, axis=0))
                tl.store(gBe0 + cn * HID + hc, _sum(S0j * G0W, axis=0))
                N0S = _ld(C1a, cn * C1AW + HID + hc, DT)[None, :] * G0S + _ld(Be0, cn * HID + hc, DT)[None, :] * G0W
                gh0 -= _dot(me0t * delta0, tl.trans(G0S), DT)
        N0W += _dot(tl.trans(Q), gc0, DT)
        gq += _dot(gc0, tl.trans(W0j), DT)
        if MOM:
            N0S += _dot(tl.trans(Q), gBa0, DT)
            gq += _dot(gBa0, tl.trans(S0j), DT)
        # the delta chain delta_0 = sigma'(z_0) (delta_1 W_1^T) with its second-order term
        gp0 = _act_d1(z0, ACT) * gdelta0
        gz0 = _act_d2(z0, ACT) * p0 * gdelta0
        gdelta1 += _dot(gp0, W1j, DT)
        tl.debug_barrier()
        tl.store(g1 + o1, N1W)
        tl.store(g0 + o0, N0W)
        if MOM:
            tl.store(g1 + o1 + D, N1S)
            tl.store(g0 + o0 + HID, N0S)
        so = srows + hc[None, :]
        tl.store(scr + so, gz0)
        tl.store(scr + BT * HID + so, gh1)
        tl.store(scr + 2 * BT * HID + so, gp0)
    # ---- the inner error at the output: delta_1 = LN'(z_1)^T g, g = 2 gamma r, r = gamma LN(z_1) + off
    w = gdelta1
    gg = _ln_bwd(w, nz, rstd, D, DTRUE)
    mwn = _sum(w * nz, axis=1)[:, None] / DTRUE
    mgn = _sum(gl * nz, axis=1)[:, None] / DTRUE
    Gx = -rstd * (gl * mwn + w * mgn)
    extra = nz * (-(rstd / DTRUE) * _sum(w * delta1, axis=1)[:, None])
    gr = 2.0 * lw * gg
    glnw += _sum(2.0 * r * gg + nz * gr, axis=0)
    tl.store(goff + cn * BT * D + rows, gr)
    gz1 = _ln_bwd(Gx + lw * gr, nz, rstd, D, DTRUE) + extra
    tl.debug_barrier()
    # ---- pass D: the forward chain z_0 = K W_0, z_1 = sigma(z_0) W_1
    gk = gh0
    for j in range(NT):
        hc = j * BH + tl.arange(0, BH)
        o0, o1 = _tile_ptrs(hc, rd, D, W0S, W1S)
        W0j = _ld(s0, o0, DT)
        W1j = _ld(s1, o1, DT)
        z0 = _dot(K, W0j, DT)
        so = srows + hc[None, :]
        gz0 = _ld(scr, so, DT)
        gh1 = _ld(scr, BT * HID + so, DT)
        gp0 = _ld(scr, 2 * BT * HID + so, DT)
        gz0 += _act_d1(z0, ACT) * (gh1 + _dot(gz1, tl.trans(W1j), DT))
        tl.store(g1 + o1, _ld(g1, o1, DT) + _dot(tl.trans(_act(z0, ACT)), gz1, DT) + _dot(tl.trans(gp0), delta1, DT))
        tl.store(g0 + o0, _ld(g0, o0, DT) + _dot(tl.trans(K), gz0, DT))
        gk += _dot(gz0, tl.trans(W0j), DT)
    base = cn * 2 * BT * D
    tl.store(gkq + base + rows, gk)
    tl.store(gkq + base + BT * D + rows, gq)
    if CA0 == 1:
        if DECAY:
            tl.store(gA0 + cn * BT + rt, gA0v)
        if MOM:
            tl.store(gB0 + cn * BT + rt, gB0v)
        tl.store(gD0 + cn * BT * BT + rt[:, None] * BT + rt[None, :], gDs0)
        tl.store(gde0 + cn * BT + rt, gde0v)
    if MOM:
        tl.store(gme0 + cn * BT + rt, gme0v)
    tl.debug_barrier()
    return glnw


@triton.jit
def deep_bwd_kernel(kq, qb, off, lnw, gy, A0, B0, D0, C1a, Be0, de0, me0, A1, B1, D1, C1b, Be1, de1, me1,
                    tg0, tg1, r0, saved0, saved1, scr0, scr1, scr_g, g0, g1,
                    gkq, goff, gA0, gB0, gD0, gC1a, gBe0, gde0, gme0, gA1, gB1, gD1, gC1b, gBe1, gde1, gme1, glnw,
                    gtg0, gtg1, gr0, nc, nc_upd, N, group, n_saved, eps,
                    D: tl.constexpr, HID: tl.constexpr, BH: tl.constexpr, BT: tl.constexpr, MOM: tl.constexpr,
                    DECAY: tl.constexpr, CA0: tl.constexpr, CA1: tl.constexpr, ACT: tl.constexpr,
                    DT: tl.constexpr, DTRUE: tl.constexpr, TGT: tl.constexpr):
    """Groups in reverse: the group's chunk-start states are recomputed from its saved state into the scratch
    slots (scr0/scr1 [N, group, ...]), then the chunks' VJPs run in reverse. g0 / g1: the final state's
    gradient on entry, the initial state's on exit. glnw [N, d]: the LayerNorm scale's gradient. TGT: gtg0 / gtg1
    (zero on entry, like tg0 / tg1) accumulate the targets' gradients over the chunks; gr0 like r0."""
    n = tl.program_id(0).to(tl.int64)
    W0S: tl.constexpr = 2 * HID if MOM else HID
    W1S: tl.constexpr = 2 * D if MOM else D
    SZ0: tl.constexpr = D * W0S
    SZ1: tl.constexpr = HID * W1S
    gs0 = g0 + n * SZ0
    gs1 = g1 + n * SZ1
    sg = scr_g + n * 3 * BT * HID
    ln_row = lnw + n * D
    t0 = tg0 + n * D * HID
    t1 = tg1 + n * HID * D
    gt0 = gtg0 + n * D * HID
    gt1 = gtg1 + n * HID * D
    glnw_acc = _zeros((D,), DT)
    for gi in range(n_saved):
        g = n_saved - 1 - gi
        c0 = g * group
        c1 = tl.minimum(nc, c0 + group)
        _copy_state(saved0 + (g * N + n) * SZ0, saved1 + (g * N + n) * SZ1, scr0 + n * group * SZ0,
                    scr1 + n * group * SZ1, D, HID, BH, MOM)
        tl.debug_barrier()
        for c in range(c0, c1 - 1):
            k = c - c0
            _deep_step(scr0 + (n * group + k) * SZ0, scr1 + (n * group + k) * SZ1,
                       scr0 + (n * group + k + 1) * SZ0, scr1 + (n * group + k + 1) * SZ1,
                       kq, qb, off, ln_row, A0, B0, D0, C1a, Be0, de0, me0, A1, B1, D1, C1b, Be1, de1, me1,
                       t0, t1, r0, kq, c * N + n, True, eps, D, HID, BH, BT, MOM, DECAY, CA0, CA1, ACT, False, DT,
                       DTRUE, TGT)
        for ci in range(c1 - c0):
            c = c1 - 1 - ci
            k = c - c0
            glnw_acc += _deep_chunk_bwd(scr0 + (n * group + k) * SZ0, scr1 + (n * group + k) * SZ1, gs0, gs1, sg,
                                        kq, off, ln_row, gy, A0, B0, D0, C1a, Be0, de0, me0,
                                        A1, B1, D1, C1b, Be1, de1, me1, t0, t1, r0,
                                        gkq, goff, gA0, gB0, gD0, gC1a, gBe0, gde0, gme0,
                                        gA1, gB1, gD1, gC1b, gBe1, gde1, gme1, gt0, gt1, gr0,
                                        c * N + n, c < nc_upd, eps, D, HID, BH, BT, MOM, DECAY, CA0, CA1, ACT, DT,
                                        DTRUE, TGT)
    tl.store(glnw + n * D + tl.arange(0, D), glnw_acc)
