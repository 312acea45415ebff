"""The interface of the memory scan operator: its static settings (``ScanSpec``) and its tensor inputs
(``ScanInputs``), shared by the torch operator (``scan.MemoryScan``) and the Triton kernels
(``triton.TritonMemoryScan``), which take and return exactly these.

An autograd.Function takes its tensors as positional arguments, so the operator's inputs travel as one flat list
(``ScanInputs.flat``, read back with ``ScanInputs.unflatten``) after the ``ScanSpec``; its backward returns the
gradients in the same layout (``ScanInputs(...).flat()`` of the gradients). Stacked over chunks ([nc, N, ...]):

    WS       the chunk-start state [W_l | S_l] of each layer l (just W_l without momentum), the memory M of
             eqs. 13-14 with its momentum S (eq. 14), [N, d_in, 2 d_out]
    kq       [K; Q] rows of each chunk, [nc, N, 2b, d]
    qb       Q + beta (depth > 1: the read's residual and LayerNorm bias), else None
    v        V (depth 1), else None
    off      K + beta - V (depth > 1: the inner loss's residual, eq. 12), else None
    coefs    per layer the chunk coefficients (A, B, D, C1, Be, de, me) of the gates (eqs. 13-14 carried over
             the chunk; see step.py), ``None`` where a gate is off; layer 0's D holds D_0 * (Q K^T)
    lnw      the LayerNorm scale gamma (depth > 1), else None
    targets  per layer the decay target T (decay_target="init": M_t - T = (1 - alpha_t)(M_{t-1} - T) + S_t),
             or None
    r0       (1 - A_0) (Q T_0), layer 0's state-independent part of the read toward the target, or None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

#: the coefficients of one layer, in this order (see step.py for their meaning and shapes)
COEF_NAMES = ("A", "B", "D", "C1", "Be", "de", "me")
N_COEFS = len(COEF_NAMES)


@dataclass(frozen=True)
class ScanSpec:
    """The static settings of one call of the scan operator (a non-tensor autograd.Function argument; frozen, so
    hashable and compared by value).

    depth         number of memory layers L_M (the MLP M of eq. 12; 1 = a matrix memory)
    momentum      the surprise momentum S_t of eq. 14 is carried (the state is [W | S]); else eta = 0
    activation    sigma of the memory MLP ("gelu", "silu", "relu", "tanh")
    ln_eps        epsilon of the LayerNorm on the last layer's output (depth > 1)
    chunk_size    b, tokens per chunk (the gradients of eq. 16-17 are taken at the chunk-start state)
    update_last   the last chunk commits its state update (a full chunk, or a partial one that is committed)
    group         G, chunks between the states saved for the backward (``scan.auto_group``)
    compile       run the torch chunk step through torch.compile (``scan.MemoryScan`` only)
    douts         output width of each layer (d_out of W_l)
    """

    depth: int
    momentum: bool
    activation: str
    ln_eps: float
    chunk_size: int
    update_last: bool
    group: int
    compile: bool
    douts: tuple[int, ...]


class ScanInputs(NamedTuple):
    """The operator's tensor inputs by name (see the module docstring); ``flat`` / ``unflatten`` convert to and
    from the positional layout that the autograd.Functions take and return."""

    WS: list
    kq: Tensor
    qb: Tensor | None
    v: Tensor | None
    off: Tensor | None
    coefs: list  # per layer a sequence (A, B, D, C1, Be, de, me)
    lnw: Tensor | None
    targets: list | None  # per layer, or None (no decay target)
    r0: Tensor | None

    @property
    def decay(self) -> bool:
        """The forget gate alpha of eq. 13 is on (layer 0's decay product A is given)."""
        return self.coefs[0][COEF_NAMES.index("A")] is not None

    def flat(self) -> list:
        """[*WS, kq, qb, v, off, *coefs of layer 0, ..., lnw, *targets (None per layer without), r0]."""
        depth = len(self.WS)
        return [*self.WS, self.kq, self.qb, self.v, self.off, *[t for layer in self.coefs for t in layer], self.lnw,
                *(self.targets or [None] * depth), self.r0]

    @staticmethod
    def size(depth: int) -> int:
        """The length of ``flat`` for a memory of ``depth`` layers."""
        return depth * (2 + N_COEFS) + 6

    @classmethod
    def unflatten(cls, flat, depth: int) -> ScanInputs:
        """The inverse of ``flat`` for a memory of ``depth`` layers (``targets`` is None when there are none)."""
        if len(flat) != cls.size(depth):
            raise ValueError(f"a depth-{depth} scan takes {cls.size(depth)} inputs, got {len(flat)}")
        it = iter(flat)
        WS = [next(it) for _ in range(depth)]
        kq, qb, v, off = (next(it) for _ in range(4))
        coefs = [tuple(next(it) for _ in range(N_COEFS)) for _ in range(depth)]
        lnw = next(it)
        targets = [next(it) for _ in range(depth)]
        r0 = next(it)
        return cls(WS=WS, kq=kq, qb=qb, v=v, off=off, coefs=coefs, lnw=lnw,
                   targets=None if targets[0] is None else targets, r0=r0)

