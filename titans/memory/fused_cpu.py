"""The memory scan's whole chunk loop as one fused CPU kernel per call (forward) and one for its backward.

``FusedCpuScan`` takes the same ``ScanSpec`` and ``ScanInputs`` as ``scan.MemoryScan`` and returns the same
outputs and gradients; the chunk loop (inner gradient eqs. 16-17, write-then-read, chunk-end update eqs. 13-14 with
the decay target, and the hand-derived vector-Jacobian product of ``step.chunk_backward``) runs in C++ on raw
arrays (``csrc/fused_scan.cpp``), the rows of N = batch x heads in parallel (OpenMP, ``torch.get_num_threads()``
threads). So one call issues a handful of ATen ops (allocations, contiguous copies) instead of ~26 small matmuls and
their elementwise ops per chunk, forward and backward.

The library is compiled on first use with the system C++ compiler (``$CXX`` or g++; about 10 s) into
``$TITANS_CACHE`` (default ``~/.cache/titans``), keyed by a hash of the source and flags. When that fails, or for a
configuration the kernel does not cover (``unsupported_reason``: channel-wise gates, dtypes other than float32 and
float64, non-CPU tensors, depth > 4), ``dispatch`` uses the torch scan instead and says why once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from .scan_spec import N_COEFS, ScanInputs, ScanSpec

SOURCE = Path(__file__).with_name("csrc") / "fused_scan.cpp"
FLAGS = ["-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-fopenmp"]
MAX_DEPTH = 4  # MAXL in the C++ source
ACTIVATION_CODES = {"gelu": 0, "silu": 1, "relu": 2, "tanh": 3}
_N_IN = MAX_DEPTH + 6 + N_COEFS * MAX_DEPTH + MAX_DEPTH  # pointer slots of one ScanInputs in the C++ layout

_LIB: list = []  # [ctypes.CDLL] once built
_BUILD_ERROR: list[str] = []


class BuildError(RuntimeError):
    """The fused CPU kernel could not be compiled or loaded here."""


def _cache_dir() -> Path:
    return Path(os.environ.get("TITANS_CACHE", Path.home() / ".cache" / "titans"))


def build_error() -> str | None:
    """Why the library cannot be used here (after one build attempt), or None when it loads."""
    try:
        library()
    except BuildError as err:
        return str(err)
    return None


def library() -> ctypes.CDLL:
    """The compiled kernel, built on the first call of the process (and cached on disk across processes)."""
    if _LIB:
        return _LIB[0]
    if _BUILD_ERROR:
        raise BuildError(_BUILD_ERROR[0])
    try:
        path = _build()
        lib = ctypes.CDLL(str(path))
        for name in ("titans_scan_forward_f32", "titans_scan_forward_f64", "titans_scan_backward_f32",
                     "titans_scan_backward_f64"):
            fn = getattr(lib, name)
            fn.restype = None
            fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                           ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    except (OSError, subprocess.SubprocessError, AttributeError) as err:
        msg = f"titans: could not build the fused CPU memory kernel ({type(err).__name__}: {err})"
        _BUILD_ERROR.append(msg)
        raise BuildError(msg) from err
    _LIB.append(lib)
    return lib


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), platform.processor())
    except OSError:
        return platform.machine() + platform.processor()


def _build() -> Path:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise OSError("no C++ compiler found (set $CXX or install g++)")
    src = SOURCE.read_bytes()
    # -march=native: the library is specific to this CPU, so its features are part of the cache key
    key = hashlib.sha256(src + " ".join([cxx, *FLAGS, _cpu_flags()]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"titans_fused_scan_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise subprocess.SubprocessError(f"{cxx} failed:\n{proc.stderr.strip()[-2000:]}")
        os.replace(tmp, out)  # atomic: concurrent builders leave one complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ----------------------------------------------------------------------------------------------- coverage
def unsupported_reason(spec: ScanSpec, flat: list) -> str | None:
    """Why the fused kernel does not cover this call (None when it does)."""
    x = ScanInputs.unflatten(flat, spec.depth)
    if x.kq.device.type != "cpu":
        return f"{x.kq.device.type} tensors (it is a CPU kernel)"
    if x.kq.dtype not in (torch.float32, torch.float64):
        return f"dtype {x.kq.dtype} (float32 and float64 only)"
    if spec.depth > MAX_DEPTH:
        return f"depth {spec.depth} > {MAX_DEPTH}"
    if spec.activation not in ACTIVATION_CODES:
        return f"activation {spec.activation!r}"
    A, D = x.coefs[0][0], x.coefs[0][2]
    if (A is not None and A.shape[-1] > 1) or D.dim() > 4:
        return "channel-wise forget gates"
    if any(t is not None and (t.dtype != x.kq.dtype or t.device != x.kq.device) for t in flat):
        return "inputs of mixed dtypes or devices"
    return None


# ----------------------------------------------------------------------------------------------- the operator
def _full_shapes(spec: ScanSpec, x: ScanInputs) -> list:
    """The shape of every slot of ``ScanInputs.flat`` as the kernel reads it (contiguous, no broadcast axes)."""
    nc, N, b2, d = x.kq.shape
    b = b2 // 2
    wcols = [dd * (2 if spec.momentum else 1) for dd in spec.douts]
    dins = [w.shape[-2] for w in x.WS]
    shapes = [(N, din, wc) for din, wc in zip(dins, wcols)]
    shapes += [(nc, N, 2 * b, d)] + [(nc, N, b, d)] * 3
    for l, layer in enumerate(x.coefs):
        c1w = 1 if layer[3] is None else layer[3].shape[-1]
        shapes += [(nc, N, b, 1), (nc, N, b, 1), (nc, N, b, b), (nc, N, 1, c1w), (nc, N, 1, 1), (nc, N, b, 1),
                   (nc, N, b, 1)]
    shapes += [(N, 1, d)]
    shapes += [(N, din, dd) for din, dd in zip(dins, spec.douts)]
    shapes += [(nc, N, b, spec.douts[0])]
    return shapes


def _ints(spec: ScanSpec, x: ScanInputs) -> ctypes.Array:
    nc, N, b2, d = x.kq.shape
    vals = [spec.depth, b2 // 2, d, nc, N, spec.group, ACTIVATION_CODES[spec.activation], int(spec.momentum),
            int(spec.update_last)]
    for l in range(MAX_DEPTH):
        if l < spec.depth:
            C1 = x.coefs[l][3]
            vals += [x.WS[l].shape[-2], spec.douts[l], 0 if C1 is None else C1.shape[-1]]
        else:
            vals += [0, 0, 0]
    return (ctypes.c_int64 * len(vals))(*vals)


def _slots(spec: ScanSpec, ts: list) -> list:
    """``ScanInputs.flat``-ordered tensors (or None) -> the C++ pointer layout: WS[4], kq, qb, v, off, lnw, r0,
    coefs[4][7], targets[4]."""
    x = ScanInputs.unflatten(ts, spec.depth)
    pad = [None] * (MAX_DEPTH - spec.depth)
    coefs = [t for layer in x.coefs for t in layer] + [None] * (N_COEFS * (MAX_DEPTH - spec.depth))
    targets = (x.targets or [None] * spec.depth) + pad
    return [*x.WS, *pad, x.kq, x.qb, x.v, x.off, x.lnw, x.r0, *coefs, *targets]


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _call(name: str, ints, eps: float, tensors: list, threads: int) -> None:
    ptrs = (ctypes.c_void_p * len(tensors))(*[_ptr(t) for t in tensors])
    getattr(library(), name)(ints, ctypes.byref(ctypes.c_double(eps)), ptrs, threads)


class FusedCpuScan(torch.autograd.Function):
    """``scan.MemoryScan`` with its chunk loop in the fused C++ kernel: same signature, outputs and gradients."""

    @staticmethod
    def forward(ctx, spec: ScanSpec, *flat):
        # (few ATen calls: contiguous() of a contiguous tensor and torch.empty issue one or none)
        shapes = _full_shapes(spec, ScanInputs.unflatten(flat, spec.depth))
        ins = [None if t is None else (t if t.shape == s else t.expand(s)).contiguous() for t, s in zip(flat, shapes)]
        x = ScanInputs.unflatten(ins, spec.depth)
        nc, N, b2, d = x.kq.shape
        keep = any(ctx.needs_input_grad)
        dt = x.kq.dtype
        y = torch.empty(nc, N, b2 // 2, spec.douts[-1], dtype=dt)
        WS = [torch.empty(w.shape, dtype=dt) for w in x.WS]
        n_saved = -(-nc // spec.group)
        saved = [torch.empty(n_saved, *w.shape, dtype=dt) for w in x.WS] if keep else []
        pad = [None] * (MAX_DEPTH - spec.depth)
        suffix = "f64" if x.kq.dtype == torch.float64 else "f32"
        ints = _ints(spec, x)
        with torch.profiler.record_function("titans::fused_scan_forward"):
            _call(f"titans_scan_forward_{suffix}", ints, spec.ln_eps,
                  [*_slots(spec, ins), y, *WS, *pad, *(saved or [None] * spec.depth), *pad],
                  torch.get_num_threads())
        if keep:
            ctx.save_for_backward(*[t for t in ins if t is not None], *saved)
            ctx.present = [t is not None for t in ins]
            ctx.in_shapes = [None if t is None else t.shape for t in flat]
        ctx.spec = spec
        return (y, *WS)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, *gstate):
        spec: ScanSpec = ctx.spec
        it = iter(ctx.saved_tensors)
        ins = [next(it) if p else None for p in ctx.present]
        saved = list(it)
        x = ScanInputs.unflatten(ins, spec.depth)
        grads = [None if t is None else torch.empty(t.shape, dtype=t.dtype) for t in ins]  # zeroed by the kernel
        for i, g in enumerate(gstate):  # the final state's gradient, updated in place by the kernel
            grads[i] = torch.zeros(ins[i].shape, dtype=ins[i].dtype) if g is None else g.clone(
                memory_format=torch.contiguous_format)
        pad = [None] * (MAX_DEPTH - spec.depth)
        suffix = "f64" if x.kq.dtype == torch.float64 else "f32"
        with torch.profiler.record_function("titans::fused_scan_backward"):
            _call(f"titans_scan_backward_{suffix}", _ints(spec, x), spec.ln_eps,
                  [*_slots(spec, ins), *_slots(spec, grads), *saved, *pad, gy.contiguous()],
                  torch.get_num_threads())
        out = [None if g is None or not need else g if g.shape == shape else g.sum_to_size(shape)
               for g, shape, need in zip(grads, ctx.in_shapes, ctx.needs_input_grad[1:])]
        return (None, *out)


def fused_cpu_scan(spec: ScanSpec, flat: list):
    """Run the chunk loop with the fused CPU kernel (``unsupported_reason`` must be None)."""
    return FusedCpuScan.apply(spec, *flat)
