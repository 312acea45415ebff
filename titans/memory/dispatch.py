"""``memory_scan``, the memory recurrence with a hand-derived backward (paper eqs. 13-18, chunked), and the choice
of the operator that runs its chunk loop: the torch scan (``scan.MemoryScan``), the Triton kernels
(``triton.TritonMemoryScan``) or the fused CPU kernel (``fused_cpu.FusedCpuScan``, backend "fused_cpu"), which take
the same ``ScanSpec`` and ``ScanInputs`` (``scan_spec``) and return the same outputs and gradients.

This module sits above both: ``scan`` does not know the kernels exist, and the ``triton`` package does not know
how it is chosen (it is imported here on the first call that may use it).
"""

from __future__ import annotations

import os
import warnings

from torch import Tensor

from .scan import MemoryScan, scan_inputs, scan_outputs
from .scan_spec import ScanSpec

BACKENDS = ("torch", "auto", "triton", "fused_cpu")

_AUTO_FAILED: list[str] = []  # set once when the kernels cannot run on this GPU: auto-dispatch then stops trying
_WARNED: set[str] = set()


def memory_scan(q: Tensor, k: Tensor, v: Tensor, lr: list[Tensor], log_eta: list[Tensor] | None,
                log_decay: list[Tensor] | None, weights: list[Tensor], momentum: list[Tensor] | None, *,
                chunk_size: int, activation: str, ln_weight: Tensor | None = None, ln_bias: Tensor | None = None,
                ln_eps: float = 1e-5, commit_partial: bool = False, checkpoint_group: int = 0,
                decay_target: list[Tensor] | None = None, compile: bool = False, backend: str = "torch"
                ) -> tuple[Tensor, list[Tensor], list[Tensor] | None]:
    """Same arguments, results and gradients as ``chunked.chunked_memory``; ``checkpoint_group`` is the number
    G of chunks between saved states (0: ``scan.auto_group``); ``compile`` compiles the chunk step; ``backend``
    runs the chunk loop with ``MemoryScan`` ("torch"), the Triton kernels ("triton"; "auto": on CUDA when
    available) or the fused CPU kernel ("fused_cpu"), see ``apply_scan``."""
    N, T, _ = k.shape
    if T == 0:
        return q.new_zeros(N, 0, q.shape[-1]), list(weights), None if momentum is None else list(momentum)
    spec, flat = scan_inputs(q, k, v, lr, log_eta, log_decay, weights, momentum, chunk_size=chunk_size,
                             activation=activation, ln_weight=ln_weight, ln_bias=ln_bias, ln_eps=ln_eps,
                             commit_partial=commit_partial, checkpoint_group=checkpoint_group,
                             decay_target=decay_target, compile=compile)
    return scan_outputs(apply_scan(backend, spec, flat), spec, T)


def apply_scan(backend: str, spec: ScanSpec, flat: list):
    """Run the chunk loop with the Triton kernels when ``backend`` asks for them and they cover the call, else with
    ``scan.MemoryScan``. backend: "torch" (never Triton), "fused_cpu" (the C++ kernel when it covers the call and
    builds here, else the torch scan with one warning), "auto" (Triton on CUDA tensors when triton imports, the
    call is covered and TITANS_TRITON is not 0) or "triton" (explicit: errors if Triton cannot run here at all,
    falls back with a warning naming the reason for a configuration the kernels do not cover)."""
    if backend == "torch":
        return MemoryScan.apply(spec, *flat)
    if backend not in BACKENDS:
        raise ValueError(f"memory scan backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "fused_cpu":
        return _fused_cpu_or_torch(spec, flat)
    from . import triton as kernels

    device = flat[0].device
    if backend == "triton":
        kernels.check_runnable(device)
        reason = kernels.unsupported_reason(spec, flat)
        if reason is not None:
            _warn_once(f"titans: the Triton memory kernels do not cover {reason}; using the torch scan for it")
            return MemoryScan.apply(spec, *flat)
        return kernels.triton_memory_scan(spec, flat)
    if (device.type != "cuda" or os.environ.get("TITANS_TRITON", "1") == "0" or _AUTO_FAILED
            or kernels.triton_import_error() is not None or kernels.unsupported_reason(spec, flat) is not None):
        return MemoryScan.apply(spec, *flat)
    try:
        return kernels.triton_memory_scan(spec, flat)
    except Exception as err:  # noqa: BLE001 - a kernel that does not compile on this GPU: the torch scan is exact
        _AUTO_FAILED.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        _warn_once(f"titans: the Triton memory kernels failed on this device ({_AUTO_FAILED[0]}); using the "
                   "torch scan from now on (set memory.impl=triton to see the full error)")
        return MemoryScan.apply(spec, *flat)


def _fused_cpu_or_torch(spec: ScanSpec, flat: list):
    """The fused CPU kernel (``fused_cpu``) when it covers the call and builds here, else the torch scan (with one
    warning naming the reason)."""
    from . import fused_cpu

    reason = fused_cpu.unsupported_reason(spec, flat)
    if reason is None:
        err = fused_cpu.build_error()
        if err is None:
            return fused_cpu.fused_cpu_scan(spec, flat)
        reason = f"this machine ({err})"
    _warn_once(f"titans: the fused CPU memory kernel does not cover {reason}; using the torch scan for it")
    return MemoryScan.apply(spec, *flat)


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
