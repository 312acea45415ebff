"""Tolerances from numerics, not from one machine.

Every float32 / bfloat16 comparison in the tests goes through :func:`assert_within_reference_error`. The rule:

    error  = max |actual - expected|                  (expected: the answer in float64)
    bound  = factor * max(reference error, floor)
    reference error = max |reference - expected|      (reference: the same quantity computed another way in the
                                                       same precision as ``actual``, in the same test, e.g. the
                                                       float32 torch path when ``actual`` is the float32 kernel)
    floor  = ulps * eps(dtype) * scale                (eps: torch.finfo(dtype).eps, 2^-23 for float32, 2^-7 for
                                                       bfloat16; scale: max |expected| unless a condition estimate
                                                       is given, e.g. sum |x_i| for a sum of x_i)

So a bound is a statement about rounding ("no worse than ``factor`` times what float32 itself gets wrong here"),
measured on whatever CPU, thread count and load the test runs under, never a number read off one machine.
The floor keeps the bound meaningful when the reference happens to be (nearly) exact. ``factor`` and ``ulps`` are
stated in each test where they differ from the defaults, with the reason.

``scripts/check_tolerances.py`` runs every such comparison over 50 seeds (``TITANS_TOLERANCE_SEEDS=50``: the
``tol_seed`` fixture of conftest.py takes 50 values) and reports the worst ratio error / bound of each; it must
stay below 1/3. With ``TITANS_TOLERANCE_LOG=PATH`` every comparison appends one JSON line to PATH.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

FACTOR = 8.0  # the bound is this many times the float32 reference's own error ...
ULPS = 8.0  # ... or this many eps times the scale, whichever is larger


def as_float64(x) -> torch.Tensor:
    """A float64 CPU tensor of a tensor, numpy array, list or Python number."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def eps(dtype) -> float:
    """Machine epsilon (the gap between 1 and the next number) of a torch or numpy dtype."""
    if isinstance(dtype, torch.dtype):
        return torch.finfo(dtype).eps
    return float(np.finfo(dtype).eps)


def _dtype_of(x):
    if isinstance(x, torch.Tensor):
        return x.dtype
    if isinstance(x, np.ndarray):
        return x.dtype
    return None


def max_error(actual, expected) -> float:
    a, e = as_float64(actual), as_float64(expected)
    assert a.shape == e.shape, (tuple(a.shape), tuple(e.shape))
    return (a - e).abs().max().item() if a.numel() else 0.0


def assert_within_reference_error(actual, expected, reference=None, *, factor: float = FACTOR, ulps: float = ULPS,
                                  dtype=None, scale: float | None = None, what: str = "") -> float:
    """Assert max|actual - expected| <= factor * max(max|reference - expected|, ulps * eps(dtype) * scale).

    actual: the result under test (float32 or bfloat16; tensors, arrays or numbers).
    expected: the same quantity in float64 (the answer the rounding errors are measured against).
    reference: the same quantity computed another way in ``actual``'s precision (None: the floor alone bounds it).
    dtype: the precision the rounding happens in (default: ``actual``'s dtype, float32 for Python numbers).
    scale: what rounding errors are relative to (default max|expected|); a condition estimate goes here, e.g.
        sum |x_i| for a sum of terms that cancel.
    Returns error / bound (below 1 when it holds), which the tolerance check collects.
    """
    if dtype is None:
        dtype = _dtype_of(actual)
        if dtype is None or dtype in (torch.float64, np.float64):
            dtype = torch.float32
    exp64 = as_float64(expected)
    if scale is None:
        scale = exp64.abs().max().item() if exp64.numel() else 0.0
    error = max_error(actual, exp64)
    ref_error = 0.0 if reference is None else max_error(reference, exp64)
    floor = ulps * eps(dtype) * scale
    bound = factor * max(ref_error, floor)
    ratio = error / bound if bound > 0 else (0.0 if error == 0 else float("inf"))
    _log(what, error, ref_error, floor, bound, ratio)
    assert error <= bound, (f"{what or 'value'}: max error {error:.3g} > bound {bound:.3g} = {factor:g} x max("
                            f"reference error {ref_error:.3g}, {ulps:g} eps x scale {scale:.3g} = {floor:.3g})")
    return ratio


def assert_each_within_reference_error(actuals, expecteds, references=None, *, what: str = "", **kw) -> float:
    """:func:`assert_within_reference_error` on each tensor of parallel lists (None entries skipped); the worst
    ratio."""
    references = [None] * len(actuals) if references is None else references
    assert len(actuals) == len(expecteds) == len(references), (len(actuals), len(expecteds), len(references))
    worst = 0.0
    for i, (a, e, r) in enumerate(zip(actuals, expecteds, references)):
        if a is None and e is None:
            continue
        worst = max(worst, assert_within_reference_error(a, e, r, what=f"{what}[{i}]", **kw))
    return worst


def float64_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 deep copy of a module (the float64 answer of a float32 model's computation)."""
    import copy

    return copy.deepcopy(module).double()


def _log(what, error, ref_error, floor, bound, ratio):
    path = os.environ.get("TITANS_TOLERANCE_LOG")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    with open(path, "a") as f:
        f.write(json.dumps(dict(test=test, what=what, error=error, reference_error=ref_error, floor=floor,
                                bound=bound, ratio=ratio)) + "\n")
