"""Triton kernels of the memory scan: the GPU path of ``scan.MemoryScan`` (paper eqs. 13-18, chunked).

Contract: ``TritonMemoryScan`` takes exactly the inputs of ``scan.MemoryScan`` (``scan_spec``: a ``ScanSpec`` and
the tensors of a ``ScanInputs``: the state-independent coefficients of every chunk, computed batched before the loop
by ``scan.chunk_coefs``; keys/queries/values per chunk; the initial [W | S] state) and returns the same outputs
(y of every chunk, the final state) and the gradients of every input. ``memory_scan(..., backend=...)`` chooses
between them (``dispatch.apply_scan``, which asks this package ``check_runnable`` and ``unsupported_reason``):
    "torch"   scan.MemoryScan (eager or torch.compile'd chunk step);
    "auto"    the kernels on CUDA tensors when triton imports and the call is covered (below), else "torch"
              (MemoryConfig.impl="scan", the default; TITANS_TRITON=0 turns the kernels off);
    "triton"  the kernels (MemoryConfig.impl="triton"); a one-line error without CUDA tensors, unless
              TRITON_INTERPRET=1 (the Triton interpreter, which is how the tests run them on a CPU); a configuration
              the kernels do not cover falls back to "torch" with a warning naming the reason.

Design (that of the TTT training kernels): one program per (batch x head) (depth 1: per (batch x head, column
tile)); the chunk loop runs inside the kernel; the forward stores the state only every G chunks
(``scan.auto_group``); the backward walks the groups in reverse, recomputes a group's chunk-start states from its
saved state into a scratch buffer, and applies the hand-derived VJP of each chunk in reverse (the terms of
``step.chunk_backward``, with the second-order terms through sigma'' and the LayerNorm backward).
Per chunk (b tokens, gradients at the chunk-start state, eq. 16-17; A, B, D, C1, Be, de, me as in step.py):
    inner gradient   delta = 2 (K W - V)  (depth 1);  z_0 = K W_0, h = sigma(z_0), z_1 = h W_1,
                     delta_1 = LN'(z_1)^T (2 gamma (gamma LN(z_1) + K + beta - V)),  delta_0 = sigma'(z_0) delta_1 W_1^T
    read (eq. 15)    a_l = A (x_l W_l) + B (x_l S_l) - (D * x_l h_l^T) delta_l   (write-then-read, dual form)
    update (13-14)   W_l' = Ae W_l + Be S_l - h_l^T (de delta_l),   S_l' = Ee S_l - h_l^T (me delta_l)
    decay target T   (MemoryConfig.decay_target="init", M_t - T = (1 - alpha_t)(M_{t-1} - T) + S_t): W_l' gains
                     (1 - Ae) T_l, a_1 gains (1 - A_1) (x_1 T_1), and a_0 the state-independent
                     r0 = (1 - A_0) (Q T_0) that scan.scan_inputs computes for all chunks beforehand
Where the state lives:
    depth 1  a matrix memory's columns are independent, so each program holds its [d, BC] tiles of W and S in
             registers for the whole chunk loop; column reductions are summed over the tiles by the caller.
    depth 2  the state ([d, 2h] and [h, 2d], h = 4d: 256 KiB per head at d = 64, 1 MiB at d = 128) does not fit
             on chip: it lives in a per-program workspace in global memory (L2-resident on a GPU) and each chunk
             streams it in hidden tiles of BH units (2 passes forward, 4 backward), with barriers between passes.
Coverage: depth 1 and 2; gelu, silu, relu, tanh; momentum on/off; decay on/off; scalar or channel-wise decay;
decay toward zero or toward M_0 (decay_target); per-token gates (shared or per layer); chunk_size a power of two
>= 16; head_dim and hidden width powers of two (head_dim 16-128); state float32 (float64 for tests) with
float32/float64/bf16/fp16 inputs (upcast on load).
Everything else (depth 3-4, chunk 1-15, odd widths) runs through "torch". All matmuls use IEEE float32 (no TF32).
Tested in the interpreter against the torch scan (tests/memory/test_memory_triton.py); on a GPU only by the
gpu-marked tests that scripts/gpu_check.sh runs.
"""

from .op import (TritonMemoryScan, check_runnable, interpreter_enabled, triton_import_error, triton_memory_scan,
                 unsupported_reason)

__all__ = ["TritonMemoryScan", "triton_memory_scan", "unsupported_reason", "check_runnable", "triton_import_error",
           "interpreter_enabled"]
