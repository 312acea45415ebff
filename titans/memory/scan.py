"""The memory recurrence as one autograd operator (paper eqs. 13-18 with the chunk-start rule): the torch scan.

``dispatch.memory_scan`` (the entry point, ``titans.memory.memory_scan``) has the signature and the semantics of
``chunked.chunked_memory`` (the autograd reference) and computes the same values and gradients with fewer
operations (for the tiny LMM at 1K tokens, 30% fewer ATen ops eager and 74% fewer compiled) and far less memory
(4.7x less at 16K tokens for the memory alone). This module holds its torch parts:

1. ``scan_inputs``: everything that does not depend on the memory state is computed before the chunk loop,
   batched over all chunks, with ordinary autograd ops: the decay/momentum coefficients of every chunk
   (``chunk_coefs``: cumulative-product masks of the gates), the masked first-layer scores ``D * (Q K^T)``, the
   residual terms. It returns the operator's interface (``scan_spec``: a ``ScanSpec`` and the ``ScanInputs``).
2. ``MemoryScan`` (a ``torch.autograd.Function``) runs the sequential chunk loop without building a graph.
   It saves its inputs and the memory state (weights, momentum) only at the start of every group of G chunks.
3. Its backward walks the groups in reverse: it recomputes the group's chunk-start states from the saved one
   (state updates only) and then, chunk by chunk in reverse, applies the hand-derived vector-Jacobian product
   of the chunk step (``step.chunk_backward``, which includes the second-order terms through the inner
   gradient).
Peak memory: O(T / (b G)) saved states + G states of the group being differentiated + O(T d) inputs.
The chunk step can be compiled with ``torch.compile`` (``compile=True``): fused C++ kernels on CPU (Triton on a
GPU, not yet run there); the eager functions are the fallback and the tested default. The Triton kernels
(``titans.memory.triton``) implement the same operator; ``dispatch`` chooses between them.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings

import torch
from torch import Tensor

from . import step as S_
from .chunked import chunk_layout, ratio_matrix
from .scan_spec import N_COEFS, ScanInputs, ScanSpec


# ----------------------------------------------------------------------------------------------- coefficients
def chunk_coefs(lr: Tensor, log_eta: Tensor | None, log_decay: Tensor | None, last: int | None):
    """Coefficients of all chunks at once for one memory layer (see step.py for their meaning).

    lr, log_eta: [nc, N, b, 1]; log_decay: [nc, N, b, C] or None.  ``last``: the relative index of the token
    whose state the last chunk carries (b - 1 for a full chunk; None: the last chunk does not update).
    Returns (A, B, D, Ae, Be, de, me, Ee) stacked over chunks, ``None`` where the gate is off.  The chunk-end
    coefficients are the read coefficients' rows at the chunk's last token."""
    nc, N, b, _ = lr.shape
    channelwise = log_decay is not None and log_decay.shape[-1] > 1
    lr_i = lr[..., 0]  # [nc, N, b]
    if log_decay is not None:
        cum_a = log_decay.cumsum(-2)
        A = torch.exp(cum_a)  # [nc, N, t, C]
        Qm = ratio_matrix(cum_a)  # [nc, N, t, s, C]
        if not channelwise:
            Qm = Qm[..., 0]
    else:
        A = None
        Qm = torch.ones(b, b, dtype=lr.dtype, device=lr.device).tril()
    if log_eta is not None:
        cum_e = log_eta[..., 0].cumsum(-1)
        E = torch.exp(cum_e)  # [nc, N, b]
        # (E_s / E_i) theta_i for i <= s  [nc, N, s, i]
        P = ratio_matrix(cum_e.unsqueeze(-1))[..., 0] * lr_i.unsqueeze(-2)
        if channelwise:
            D = torch.einsum("xntsc,xnsi->xntic", Qm, P)
            B = torch.einsum("xntsc,xns->xntc", Qm, E)
        else:
            D = Qm @ P
            B = Qm @ E.unsqueeze(-1)  # [nc, N, t, 1]
    else:
        E = P = B = None
        D = Qm * (lr_i[:, :, None, :, None] if channelwise else lr_i.unsqueeze(-2))

    def row(t: Tensor | None, e: int, axis: int) -> Tensor | None:
        return None if t is None else t.narrow(axis, e, 1)

    def ends(e: int, sl: slice):
        """Chunk-end coefficients at relative token e for the chunks in ``sl``."""
        pick = (lambda t: None if t is None else t[sl])
        Ae = pick(row(A, e, 2))
        Be = pick(row(B, e, 2))
        de = pick(row(D, e, 2)).squeeze(2)  # [.., i] or [.., i, C]
        de = de if channelwise else de.unsqueeze(-1)
        me = None if P is None else pick(row(P, e, 2)).squeeze(2).unsqueeze(-1)
        Ee = None if E is None else pick(row(E, e, 2)).unsqueeze(-1)
        return [Ae, Be, de, me, Ee]

    if last is None or last == b - 1:
        end = ends(b - 1, slice(None))
    else:  # a partial last chunk that commits its state: its end is its last real token
        full, part = ends(b - 1, slice(0, nc - 1)), ends(last, slice(nc - 1, nc))
        end = [None if f is None else torch.cat([f, p_], 0) for f, p_ in zip(full, part)]
    return [A, B, D, *end]


# ----------------------------------------------------------------------------------------------- the operator
log = logging.getLogger(__name__)
_COMPILE_ANNOUNCED: list[bool] = []
_COMPILE_FAILED: list[str] = []  # set once when torch.compile cannot build the chunk step here


def _compiled(fn):
    """``fn`` compiled with torch.compile (one graph per shape and flag set), falling back to the eager ``fn``
    for the rest of the process, with one warning, if compilation fails (e.g. no C++ compiler on a CPU machine)."""
    compiled = torch.compile(fn, dynamic=False, fullgraph=True)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if _COMPILE_FAILED:
            return fn(*args, **kwargs)
        if not _COMPILE_ANNOUNCED:
            _COMPILE_ANNOUNCED.append(True)
            log.info("compiling the memory scan's chunk step with torch.compile (once per shape; about 20-60 s on "
                     "a CPU)")
        try:
            return compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure: the eager step computes the same values
            _COMPILE_FAILED.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            warnings.warn(f"titans: torch.compile of the memory scan failed ({_COMPILE_FAILED[0]}); "
                          "continuing with the eager chunk step (same results, slower). Set memory.compile=false "
                          "to silence this.", RuntimeWarning, stacklevel=2)
            return fn(*args, **kwargs)

    return run


_COMPILED_FNS = None


def _step_fns(compile: bool):
    global _COMPILED_FNS
    if not compile:
        return S_.chunk_forward, S_.chunk_state, S_.chunk_backward
    if _COMPILED_FNS is None:
        _COMPILED_FNS = tuple(_compiled(f) for f in (S_.chunk_forward, S_.chunk_state, S_.chunk_backward))
    return _COMPILED_FNS


class MemoryScan(torch.autograd.Function):
    """The chunk loop as one autograd node.

    ``forward(ctx, spec, *flat)``: ``spec`` a :class:`ScanSpec` (the static settings), ``flat`` the tensors of a
    :class:`ScanInputs` (``ScanInputs.flat``): stacked over chunks [nc, N, ...], the chunk-start state [W_l | S_l]
    per layer, kq = [K; Q] rows, qb = Q + beta, v, off = K + beta - V, the coefficients of every layer (7 each, see
    step.py), the LN scale, the decay targets and r0. Outputs: y stacked over chunks and the final state; the
    backward returns the gradients of ``flat`` in the same layout."""

    @staticmethod
    def forward(ctx, spec: ScanSpec, *flat):
        x = ScanInputs.unflatten(_detached(flat), spec.depth)
        nc = x.kq.shape[0]
        fwd = _step_fns(spec.compile)[0]
        ins = _per_chunk(x.kq, x.qb, x.v, x.off, x.coefs)
        r0s = [None] * nc if x.r0 is None else x.r0.contiguous().unbind(0)
        keep = any(ctx.needs_input_grad)
        kw = _step_kwargs(spec)
        WS, saved, ys = x.WS, [], []
        for c in range(nc):
            if keep and c % spec.group == 0:
                saved.extend(WS)
            y, WS = fwd(WS, *ins[c], x.lnw, x.targets, r0s[c], do_update=(c < nc - 1 or spec.update_last), **kw)
            ys.append(y)
        ctx.save_for_backward(*flat, *saved)
        ctx.spec, ctx.n_flat, ctx.n_saved = spec, len(flat), len(saved) // spec.depth
        return (torch.stack(ys), *WS)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, *gstate):
        spec: ScanSpec = ctx.spec
        depth, group = spec.depth, spec.group
        saved = ctx.saved_tensors
        x = ScanInputs.unflatten(_detached(saved[: ctx.n_flat]), depth)
        flat_states = _detached(saved[ctx.n_flat:])
        nc = x.kq.shape[0]
        kw = _step_kwargs(spec)
        _, state_fn, bwd = _step_fns(spec.compile)
        ins = _per_chunk(x.kq, x.qb, x.v, x.off, x.coefs)
        r0s = [None] * nc if x.r0 is None else x.r0.contiguous().unbind(0)
        gtargets = None if x.targets is None else [torch.zeros_like(t) for t in x.targets]
        gWS = [g.contiguous() for g in gstate]
        gys = gy.contiguous().unbind(0)
        # the gradients of each chunk's inputs, by input (stacked over the chunks at the end)
        per_chunk = {name: [None] * nc for name in ("kq", "qb", "v", "off", "lnw", "r0")}
        per_chunk_coefs = [[[None] * nc for _ in range(N_COEFS)] for _ in range(depth)]
        for g in range(ctx.n_saved - 1, -1, -1):
            c0, c1 = g * group, min(nc, (g + 1) * group)
            states, inners = [list(flat_states[g * depth:(g + 1) * depth])], []
            for c in range(c0, c1 - 1):  # the group's chunk-start states, keeping each chunk's inner factors
                kq_c, _, v_c, off_c, co_c = ins[c]
                WSn, inn = state_fn(states[-1], kq_c, v_c, off_c, co_c, x.lnw, x.targets, **kw)
                states.append(WSn)
                inners.append(inn)
            inners.append(None)
            for c in range(c1 - 1, c0 - 1, -1):
                gWS, gkq, gqb, gv, goff, gco, glnw, gT, gr0 = bwd(
                    states[c - c0], *ins[c], x.lnw, x.targets, r0s[c], gys[c], gWS, inners[c - c0],
                    do_update=(c < nc - 1 or spec.update_last), **kw)
                if gtargets is not None:
                    for l, t in enumerate(gT):
                        if t is not None:
                            gtargets[l] += t
                for name, t in zip(("kq", "qb", "v", "off", "lnw", "r0"), (gkq, gqb, gv, goff, glnw, gr0)):
                    per_chunk[name][c] = t
                for layer, g_layer in zip(per_chunk_coefs, gco):
                    for chunks, t in zip(layer, g_layer):
                        chunks[c] = t
        stacked = {name: _stack_or_none(ts) for name, ts in per_chunk.items()}
        grads = ScanInputs(
            WS=gWS, kq=stacked["kq"], qb=stacked["qb"], v=stacked["v"], off=stacked["off"],
            coefs=[[_stack_or_none(ts) for ts in layer] for layer in per_chunk_coefs],
            lnw=None if stacked["lnw"] is None else stacked["lnw"].sum(0),  # one LN scale for every chunk
            targets=gtargets, r0=stacked["r0"])
        return (None, *grads.flat())


def _step_kwargs(spec: ScanSpec) -> dict:
    """The static arguments of the chunk step (step.py)."""
    return dict(act=spec.activation, eps=spec.ln_eps, depth=spec.depth, b=spec.chunk_size, momentum=spec.momentum,
                douts=spec.douts)


def _detached(ts) -> list:
    """The operator's own computations build no graph; detached aliases also keep the compiled steps' guards
    (which include requires_grad) the same for the first chunk and the rest."""
    return [None if t is None else t.detach() for t in ts]


def _stack_or_none(ts: list) -> Tensor | None:
    if all(t is None for t in ts):
        return None
    ref = next(t for t in ts if t is not None)
    return torch.stack([torch.zeros_like(ref) if t is None else t for t in ts])


def _per_chunk(kq, qb, v, off, coefs) -> list[tuple]:
    """Per chunk c: (kq, qb, v, off, coefs) from tensors stacked over chunks (one unbind per tensor)."""
    nc = kq.shape[0]

    def split(t):  # contiguous first: each chunk's strides then do not depend on nc (compiled steps are reused)
        return [None] * nc if t is None else t.contiguous().unbind(0)

    kq_c, qb_c, v_c, off_c = (split(t) for t in (kq, qb, v, off))
    co_c = [[split(t) for t in layer] for layer in coefs]
    return [(kq_c[c], qb_c[c], v_c[c], off_c[c], [[co[c] for co in layer] for layer in co_c]) for c in range(nc)]


# ----------------------------------------------------------------------------------------------- inputs and outputs
ALL_STATES_BUDGET = 128 * 2**20  # bytes of saved chunk states per call below which every state is kept


def auto_group(nc: int, state_bytes: int) -> int:
    """Chunks between saved states when ``checkpoint_group=0``: 1 (every chunk-start state is kept, so the
    backward recomputes no state update) while those states take at most 128 MiB, else about sqrt(nc)
    (O(sqrt(nc)) states kept, one extra state update per chunk in the backward)."""
    return 1 if nc * state_bytes <= ALL_STATES_BUDGET else max(1, math.isqrt(nc))


def scan_inputs(q: Tensor, k: Tensor, v: Tensor, lr: list[Tensor], log_eta: list[Tensor] | None,
                log_decay: list[Tensor] | None, weights: list[Tensor], momentum: list[Tensor] | None, *,
                chunk_size: int, activation: str, ln_weight: Tensor | None = None, ln_bias: Tensor | None = None,
                ln_eps: float = 1e-5, commit_partial: bool = False, checkpoint_group: int = 0,
                decay_target: list[Tensor] | None = None, compile: bool = False) -> tuple[ScanSpec, list]:
    """The scan operator's arguments for a call of ``memory_scan`` (same arguments, T > 0): everything that does
    not depend on the memory state, batched over all chunks with ordinary autograd ops (step 1 above): the gates'
    coefficients of eqs. 13-14 carried over each chunk, layer 0's scores of the read (eq. 15), the residuals and,
    when forgetting decays toward a target, r0. Returns (spec, flat), ``flat`` the tensors of a
    :class:`ScanInputs` (``ScanInputs.flat``)."""
    N, T, d = k.shape
    depth = len(weights)
    b = chunk_size
    nc, pad, chunks = chunk_layout(N, T, b)
    update_last = pad == 0 or commit_partial
    has_momentum = momentum is not None
    douts = tuple(w.shape[-1] for w in weights)

    kc, qc, vc = chunks(k), chunks(q), chunks(v)
    last = (b - pad - 1) if update_last else None
    cache: dict = {}
    coefs = []
    for l in range(depth):
        key = (id(lr[l]), id(log_eta[l]) if log_eta else None, id(log_decay[l]) if log_decay else None)
        if key not in cache:
            cache[key] = chunk_coefs(chunks(lr[l]), chunks(log_eta[l]) if log_eta else None,
                                     chunks(log_decay[l]) if log_decay else None, last)
        A, B, D, Ae, Be, de, me, Ee = cache[key]
        if has_momentum:  # WS' = [Ae | Ee] * [W | S] + ...
            Ae = Ae.expand(*Ae.shape[:-1], douts[l]) if Ae is not None else Ee.new_ones(()).expand(
                *Ee.shape[:-1], douts[l])
            C1 = torch.cat([Ae, Ee.expand(*Ee.shape[:-1], douts[l])], dim=-1)
        else:
            C1 = Ae
        coefs.append([A, B, D, C1, Be, de, me])
    # layer 0 reads the queries against the keys with scores that do not depend on the state: D_0 * (Q K^T)
    scores = qc @ kc.transpose(-1, -2)
    D0 = coefs[0][2]
    coefs[0][2] = D0 * scores if D0.dim() == 4 else D0 * scores.unsqueeze(-1)
    kq = torch.cat([kc, qc], dim=2)
    # decay toward a target T (M_0): layer 0 reads (1 - A_0) (Q T_0), which does not depend on the state
    targets = r0 = None
    if decay_target is not None and log_decay is not None:
        targets = list(decay_target)
        A0 = coefs[0][0]
        r0 = torch.matmul(qc, targets[0])
        r0 = r0 - A0 * r0
    if depth > 1:
        lnb = ln_bias.unsqueeze(0)  # ln_bias enters through off and qb; its gradient flows back through them
        off, qb, vin = kc + lnb - vc, qc + lnb, None
    else:
        off = qb = None
        vin = vc
    state_bytes = sum(w.numel() * w.element_size() for w in weights) * (2 if has_momentum else 1)
    group = checkpoint_group if checkpoint_group > 0 else auto_group(nc, state_bytes)
    WS0 = [torch.cat([w, s], dim=-1) for w, s in zip(weights, momentum)] if has_momentum else list(weights)
    inputs = ScanInputs(WS=WS0, kq=kq, qb=qb, v=vin, off=off, coefs=coefs, lnw=ln_weight if depth > 1 else None,
                        targets=targets, r0=r0)
    spec = ScanSpec(depth=depth, momentum=has_momentum, activation=activation, ln_eps=ln_eps, chunk_size=b,
                    update_last=update_last, group=group, compile=bool(compile), douts=douts)
    return spec, inputs.flat()


def scan_outputs(out, spec: ScanSpec, T: int) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
    """``memory_scan``'s results from the operator's outputs (y stacked over chunks, the final [W | S] states):
    y [N, T, d], the final weights, the final momentum (None without momentum)."""
    nc, N, b = out[0].shape[:3]
    y = out[0].transpose(0, 1).reshape(N, nc * b, -1)[:, :T]
    WS = out[1:]
    if not spec.momentum:
        return y, list(WS), None
    return y, [ws[..., :dd] for ws, dd in zip(WS, spec.douts)], [ws[..., dd:] for ws, dd in zip(WS, spec.douts)]
