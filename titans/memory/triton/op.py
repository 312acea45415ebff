"""``TritonMemoryScan``: the Triton kernels behind the contract of ``scan.MemoryScan`` (a ``ScanSpec`` and the
``ScanInputs`` in, the same outputs and gradients out), and what ``dispatch`` asks before choosing them: whether
triton runs here (``check_runnable``, ``triton_import_error``) and whether the kernels cover a call
(``unsupported_reason``)."""

from __future__ import annotations

import dataclasses
import functools
import os

import torch
from torch import Tensor

from .. import step
from ..scan_spec import ScanInputs, ScanSpec

ACT_CODES = {"gelu": 0, "silu": 1, "relu": 2, "tanh": 3}
STATE_DTYPES = (torch.float32, torch.float64)
INPUT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
MAX_HEAD_DIM = 128
MAX_HIDDEN = 512
COLUMN_TILE = 32  # depth 1: columns of W per program (sm_90 at head_dim 64: 255 registers, ~2 KB spills)
HIDDEN_TILE = 32  # depth 2: hidden units per tile (sm_90 at head_dim 64: 255 registers, ~3 KB spills in the backward)
DEFAULT_TILE = None  # tests: one tile width for both


@functools.lru_cache(maxsize=1)
def triton_import_error() -> str | None:
    """None when triton imports, else why not (one line)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as err:  # noqa: BLE001 - an ImportError or a broken install: both mean "not available"
        return f"{type(err).__name__}: {err}"
    return None


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=2)
def _load_kernels(interpret: bool):
    """The kernel module, decorated for the interpreter or for the GPU compiler (triton decides when a function is
    decorated, so each mode gets its own copy of the module; both can live in one process)."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "_kernels.py")
    name = f"{__package__}._kernels_{'interpreted' if interpret else 'compiled'}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        spec.loader.exec_module(module)
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old
    return module


def kernels_for(device: torch.device):
    """Interpreted kernels for CPU tensors (or anywhere with TRITON_INTERPRET=1), compiled ones for CUDA tensors."""
    return _load_kernels(device.type != "cuda" or interpreter_enabled())


def _pow2(x: int) -> bool:
    return x >= 1 and x & (x - 1) == 0


def unsupported_reason(spec: ScanSpec, flat) -> str | None:
    """Why the kernels cannot run this call (None: they can). See the package docstring for what they cover."""
    x = ScanInputs.unflatten(flat, spec.depth)
    d, douts, WS = x.kq.shape[-1], spec.douts, x.WS
    if spec.depth not in (1, 2):
        return f"depth {spec.depth} (the kernels cover depth 1 and 2)"
    if spec.activation not in ACT_CODES:
        return f"activation {spec.activation!r}"
    if not (_pow2(spec.chunk_size) and spec.chunk_size >= 16):
        return f"chunk_size {spec.chunk_size} (the kernels need a power of two >= 16)"
    if not d <= MAX_HEAD_DIM:
        return f"head_dim {d} (the kernels cover head_dim <= {MAX_HEAD_DIM})"
    if spec.depth == 2 and (douts[1] != d or douts[0] > MAX_HIDDEN):
        return f"hidden width {douts[0]} (the kernels cover hidden widths <= {MAX_HIDDEN})"
    if WS[0].dtype not in STATE_DTYPES or any(w.dtype != WS[0].dtype for w in WS):
        return f"state dtype {WS[0].dtype} (float32 or float64)"
    for t in (x.kq, x.qb, x.v, x.off, x.r0):
        if t is not None and t.dtype not in INPUT_DTYPES:
            return f"input dtype {t.dtype}"
    if x.targets is not None and (not x.decay or x.r0 is None):
        return "a decay target without decay (or without r0)"
    devices = {t.device for t in flat if isinstance(t, Tensor)}
    if len(devices) != 1:
        return f"inputs on several devices {sorted(map(str, devices))}"
    return None


def check_runnable(device: torch.device) -> None:
    """Raise a one-line RuntimeError unless the kernels can run on ``device`` at all (memory impl='triton')."""
    err = triton_import_error()
    if err is not None:
        raise RuntimeError(f"memory impl='triton' needs the triton package ({err}); install it with "
                           "pip install -e '.[gpu]' or use impl='scan'")
    if device.type != "cuda" and not interpreter_enabled():
        raise RuntimeError(f"memory impl='triton' needs CUDA tensors (got {device.type}) or TRITON_INTERPRET=1 "
                           "(the Triton interpreter, for tests on CPU); use impl='scan' on this device")


# ----------------------------------------------------------------------------------------------- the operator
def _tiles(width: int, tile: int | None, default: int) -> int:
    return min(width, tile or DEFAULT_TILE or default)


class _Layer:
    """One memory layer's coefficients in the kernels' canonical layout (see _kernels.py)."""

    def __init__(self, co, dout: int, momentum: bool, dt: torch.dtype, dummy: Tensor):
        A, B, D, C1, Be, de, me = co
        self.orig = co
        self.CA = A.shape[-1] if A is not None else 1
        if self.CA not in (1, dout) or de.shape[-1] != self.CA:
            raise ValueError(f"channel-wise coefficients of width {self.CA} for a layer of width {dout}")
        nc, N, b = de.shape[:3]

        def canon(t, shape=None):
            if t is None:
                return dummy
            if shape is not None:
                t = t.expand(shape)
            return t.to(dt).contiguous()

        self.A, self.B, self.D, self.de, self.me = (canon(t) for t in (A, B, D, de, me))
        width = 2 * dout if momentum else dout
        if C1 is None:
            self.C1 = torch.ones(nc, N, 1, width, dtype=dt, device=de.device)
        else:
            self.C1 = canon(C1, (nc, N, 1, width))
        self.Be = canon(Be, (nc, N, 1, dout)) if momentum else dummy

    def args(self):
        return self.A, self.B, self.D, self.C1, self.Be, self.de, self.me

    def grads_to_orig(self, g):
        """Kernel gradients (A, B, D, C1, Be, de, me) summed to the shapes of the original coefficients."""
        out = []
        for t, orig in zip(g, self.orig):
            if orig is None or t is None:
                out.append(None)
                continue
            out.append(step._sum_to(t, orig).to(orig.dtype) if t.shape != orig.shape else t.to(orig.dtype))
        return out


def _targets(targets, r0, decay: bool, dt: torch.dtype, dummy: Tensor):
    """(TGT, [T_l contiguous in the state's dtype, or the dummy], r0 contiguous or the dummy)."""
    if targets is None:
        return False, [dummy, dummy], dummy
    if not decay or r0 is None:
        raise ValueError("a decay target needs the decay gate and r0 (see scan.scan_inputs)")
    return True, [t.to(dt).contiguous() for t in targets] + [dummy] * (2 - len(targets)), r0.contiguous()


def _named(x: ScanInputs) -> tuple:
    """The inputs as locals, by name (nothing relies on the order of ScanInputs' fields)."""
    return x.WS, x.kq, x.qb, x.v, x.off, x.coefs, x.lnw, x.targets, x.r0


def _dt_const(dt: torch.dtype):
    import triton.language as tl

    return tl.float64 if dt == torch.float64 else tl.float32


class TritonMemoryScan(torch.autograd.Function):
    """Same inputs, outputs and gradients as ``scan.MemoryScan`` (``spec`` and ``flat`` alike); ``tile`` overrides
    the hidden/column tile width (tests use 16 to exercise several tiles); ``dtrue`` is the true head_dim of a call
    zero-padded to a power of two (the LayerNorm statistics use it)."""

    @staticmethod
    def forward(ctx, spec: ScanSpec, tile, dtrue, *flat):
        depth, momentum, act, eps, b = spec.depth, spec.momentum, spec.activation, spec.ln_eps, spec.chunk_size
        update_last, group, douts = spec.update_last, spec.group, spec.douts
        x = ScanInputs.unflatten([None if t is None else t.detach() for t in flat], depth)
        WS, kq, qb, v, off, coefs, lnw, targets, r0 = _named(x)
        nc, N, _, d = kq.shape
        dt, dev = WS[0].dtype, kq.device
        K_ = kernels_for(dev)
        dummy = torch.zeros(1, dtype=dt, device=dev)
        layers = [_Layer(co, douts[l], momentum, dt, dummy) for l, co in enumerate(coefs)]
        kq = kq.contiguous()
        nc_upd = nc if update_last else nc - 1
        keep = any(ctx.needs_input_grad)
        n_saved = -(-nc // group) if keep else 0
        y = torch.empty(nc, N, b, d, dtype=dt, device=dev)
        decay = x.decay
        DT = _dt_const(dt)
        TGT, tg, r0k = _targets(targets, r0, decay, dt, dummy)
        if depth == 1:
            ws0 = WS[0].contiguous()
            out = torch.empty_like(ws0)
            saved = [torch.empty(max(n_saved, 1), *ws0.shape, dtype=dt, device=dev)]
            bc = _tiles(d, tile, COLUMN_TILE)
            L = layers[0]
            K_.linear_fwd_kernel[(N, d // bc)](
                ws0, kq, v.contiguous(), *L.args(), tg[0], r0k, y, out, saved[0], nc, nc_upd, N, group,
                D=d, BC=bc, BT=b, MOM=momentum, DECAY=decay, CA=L.CA, SAVE=keep, DT=DT, TGT=TGT)
            outs = [out]
        else:
            h = douts[0]
            outs = [w.contiguous().clone() for w in WS]  # updated in place
            saved = [torch.empty(max(n_saved, 1), *w.shape, dtype=dt, device=dev) for w in outs]
            bh = _tiles(h, tile, HIDDEN_TILE)
            K_.deep_fwd_kernel[(N,)](
                kq, qb.contiguous(), off.contiguous(), lnw.contiguous(), *layers[0].args(), *layers[1].args(),
                tg[0], tg[1], r0k, y, outs[0], outs[1], saved[0], saved[1], nc, nc_upd, N, group, eps,
                D=d, HID=h, BH=bh, BT=b, MOM=momentum, DECAY=decay, CA0=layers[0].CA, CA1=layers[1].CA,
                ACT=ACT_CODES[act], SAVE=keep, DT=DT, DTRUE=dtrue, TGT=TGT)
        if keep:
            ctx.save_for_backward(*flat, *saved)
            ctx.spec, ctx.tile, ctx.dtrue, ctx.n_flat, ctx.n_saved = spec, tile, dtrue, len(flat), n_saved
        return (y, *outs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, *gstate):
        spec: ScanSpec = ctx.spec
        depth, momentum, act, eps, b = spec.depth, spec.momentum, spec.activation, spec.ln_eps, spec.chunk_size
        update_last, group, douts = spec.update_last, spec.group, spec.douts
        saved_all = ctx.saved_tensors
        flat, saved = saved_all[: ctx.n_flat], saved_all[ctx.n_flat:]
        x = ScanInputs.unflatten(flat, depth)
        WS, kq, qb, v, off, coefs, lnw, targets, r0 = _named(x)
        nc, N, _, d = kq.shape
        dt, dev = WS[0].dtype, kq.device
        K_ = kernels_for(dev)
        dummy = torch.zeros(1, dtype=dt, device=dev)
        layers = [_Layer(co, douts[l], momentum, dt, dummy) for l, co in enumerate(coefs)]
        nc_upd = nc if update_last else nc - 1
        decay = x.decay
        DT = _dt_const(dt)
        TGT, tg, r0k = _targets(targets, r0, decay, dt, dummy)
        # the targets' gradients (accumulated over the chunks, zero on entry) and r0's (one per chunk)
        gtg = [torch.zeros_like(t) for t in tg[:depth]] if TGT else [dummy, dummy]
        gtg += [dummy] * (2 - len(gtg))
        gr0 = torch.empty(r0k.shape, dtype=dt, device=dev) if TGT else dummy
        gy = gy.to(dt).contiguous()
        gws = [g.to(dt).contiguous().clone() for g in gstate]
        z = functools.partial(torch.zeros, dtype=dt, device=dev)

        def coef_bufs(L, dout, lead=()):
            """Zeroed gradient buffers (A, B, D, C1, Be, de, me); ``lead``: a leading axis of per-tile partial sums
            for the coefficients that are reductions over the columns (depth 1 with scalar gates)."""
            ca_shape = (nc, N, b, L.CA)
            red = lead if L.CA == 1 else ()
            return [z(*red, nc, N, b) if L.CA == 1 else z(*ca_shape),
                    z(*red, nc, N, b) if L.CA == 1 else z(*ca_shape),
                    z(*red, nc, N, b, b) if L.CA == 1 else z(nc, N, b, b, L.CA),
                    z(nc, N, 1, L.C1.shape[-1]), z(nc, N, 1, dout),
                    z(*red, nc, N, b) if L.CA == 1 else z(*ca_shape), z(*lead, nc, N, b)]

        def finish(bufs, L, lead: bool):
            out = []
            for m, t in enumerate(bufs):
                if lead and (L.CA == 1 or m == 6) and m not in (3, 4):
                    t = t.sum(0)
                if m in (0, 1, 5, 6) and t.dim() == 3:
                    t = t.unsqueeze(-1)
                out.append(t)
            return L.grads_to_orig(out)

        if depth == 1:
            L = layers[0]
            bc = _tiles(d, ctx.tile, COLUMN_TILE)
            ncol = d // bc
            gkq_p = z(ncol, nc, N, 2 * b, d)
            gv = z(nc, N, b, d)
            bufs = coef_bufs(L, d, lead=(ncol,))
            scratch = torch.empty(N, group, *WS[0].shape[1:], dtype=dt, device=dev)
            K_.linear_bwd_kernel[(N, ncol)](
                kq.contiguous(), v.contiguous(), *L.args(), tg[0], gy, saved[0], scratch, gws[0],
                gkq_p, gv, *bufs, gtg[0], gr0, nc, nc_upd, N, group, ctx.n_saved,
                D=d, BC=bc, BT=b, MOM=momentum, DECAY=decay, CA=L.CA, DT=DT, TGT=TGT)
            gco = [finish(bufs, L, lead=True)]
            gkq, gqb, goff, glnw = gkq_p.sum(0), None, None, None
            gv = gv.to(v.dtype)
        else:
            h = douts[0]
            bh = _tiles(h, ctx.tile, HIDDEN_TILE)
            gkq, goff = z(nc, N, 2 * b, d), z(nc, N, b, d)
            bufs = [coef_bufs(L, douts[l]) for l, L in enumerate(layers)]
            scr = [torch.empty(N, group, *w.shape[1:], dtype=dt, device=dev) for w in WS]
            scr_g = torch.empty(N, 3, b, h, dtype=dt, device=dev)
            glnw = z(N, d)
            K_.deep_bwd_kernel[(N,)](
                kq.contiguous(), qb.contiguous(), off.contiguous(), lnw.contiguous(), gy,
                *layers[0].args(), *layers[1].args(), tg[0], tg[1], r0k, saved[0], saved[1], scr[0], scr[1],
                scr_g, gws[0], gws[1], gkq, goff, *bufs[0], *bufs[1], glnw, gtg[0], gtg[1], gr0,
                nc, nc_upd, N, group, ctx.n_saved, eps,
                D=d, HID=h, BH=bh, BT=b, MOM=momentum, DECAY=decay, CA0=layers[0].CA, CA1=layers[1].CA,
                ACT=ACT_CODES[act], DT=DT, DTRUE=ctx.dtrue, TGT=TGT)
            gco = [finish(bf, L, lead=False) for bf, L in zip(bufs, layers)]
            gqb, gv = gy.to(qb.dtype), None
            goff, glnw = goff.to(off.dtype), glnw.view(N, 1, d).to(lnw.dtype)
        gkq = gkq.to(kq.dtype)
        gWS = [g.to(w.dtype) for g, w in zip(gws, WS)]
        if TGT:
            gT = [g.to(t.dtype) for g, t in zip(gtg, targets)]
            gr0 = gr0.to(r0.dtype)
        else:
            gT, gr0 = None, None
        grads = ScanInputs(WS=gWS, kq=gkq, qb=gqb, v=gv, off=goff, coefs=gco, lnw=glnw, targets=gT, r0=gr0)
        return (None, None, None, *grads.flat())


def _next_pow2(x: int) -> int:
    return max(16, 1 << (x - 1).bit_length())


def _pad_last(t: Tensor | None, width: int, parts: int = 1) -> Tensor | None:
    """Zero-pad the last axis of t (made of ``parts`` equal blocks, e.g. [W | S]) so that each block has ``width``."""
    if t is None or t.shape[-1] == parts * width:
        return t
    if parts == 1:
        return torch.nn.functional.pad(t, (0, width - t.shape[-1]))
    return torch.cat([_pad_last(p, width) for p in t.chunk(parts, dim=-1)], dim=-1)


def _pad_rows(t: Tensor, rows: int) -> Tensor:
    return t if t.shape[-2] == rows else torch.nn.functional.pad(t, (0, 0, 0, rows - t.shape[-2]))


def _padded(spec: ScanSpec, flat):
    """The call with head_dim and hidden width zero-padded to powers of two (exact: the padded keys, values, weights
    and LN scale are zero, sigma(0) = 0, and the LayerNorm statistics use the true width): (the padded spec, the
    padded flat inputs, the true head_dim, the true layer widths); None if no padding."""
    depth, momentum, douts = spec.depth, spec.momentum, spec.douts
    WS, kq, qb, v, off, coefs, lnw, targets, r0 = _named(ScanInputs.unflatten(flat, depth))
    d = kq.shape[-1]
    D = _next_pow2(d)
    widths = [D] if depth == 1 else [_next_pow2(douts[0]), D]
    if D == d and list(douts) == widths:
        return None
    parts = 2 if momentum else 1
    rows = [D] + widths[:-1]
    WSp = [_pad_rows(_pad_last(w, wd, parts), r) for w, wd, r in zip(WS, widths, rows)]
    cop = []
    for (A, B, Dm, C1, Be, de, me), wd in zip(coefs, widths):
        cw = A is not None and A.shape[-1] > 1
        chan = (lambda t: _pad_last(t, wd)) if cw else (lambda t: t)
        c1 = _pad_last(C1, wd, parts) if (C1 is not None and (momentum or cw)) else C1
        cop.append((chan(A), chan(B), chan(Dm) if (cw and Dm is not None) else Dm, c1, chan(Be), chan(de), me))
    # decay targets like the W parts of the state (zero: the padded weights stay zero); r0 like layer 0's read
    tp = None if targets is None else [_pad_rows(_pad_last(t, wd), r) for t, wd, r in zip(targets, widths, rows)]
    padded = ScanInputs(WS=WSp, kq=_pad_last(kq, D), qb=_pad_last(qb, D), v=_pad_last(v, D), off=_pad_last(off, D),
                        coefs=cop, lnw=_pad_last(lnw, D), targets=tp, r0=_pad_last(r0, widths[0]))
    return dataclasses.replace(spec, douts=tuple(widths)), padded.flat(), d, list(douts)


def triton_memory_scan(spec: ScanSpec, flat, tile: int | None = None):
    """The kernels without the dispatcher (tests and benchmarks): same results as ``scan.MemoryScan.apply``."""
    pad = _padded(spec, flat)
    if pad is None:
        d = ScanInputs.unflatten(flat, spec.depth).kq.shape[-1]
        return TritonMemoryScan.apply(spec, tile, d, *flat)
    spec_p, flat_p, d, douts = pad
    y, *WS = TritonMemoryScan.apply(spec_p, tile, d, *flat_p)
    parts = 2 if spec.momentum else 1
    rows = [d] + douts[:-1]
    WS = [w[..., :r, :] for w, r in zip(WS, rows)]
    WS = [w if w.shape[-1] == parts * do else torch.cat([p[..., :do] for p in w.chunk(parts, dim=-1)], dim=-1)
          for w, do in zip(WS, douts)]
    return (y[..., :d], *WS)


__all__ = ["TritonMemoryScan", "triton_memory_scan", "unsupported_reason", "check_runnable", "triton_import_error",
           "interpreter_enabled"]
