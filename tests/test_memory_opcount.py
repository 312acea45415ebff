"""A regression guard on the number of ATen ops the memory issues (a count, not a timing: deterministic).

One forward+backward of the tiny LMM (4 blocks, d_model 128, 4 heads, chunk 16) at 512 tokens, counted with
torch.profiler as ``scripts/count_ops.py`` does (every event whose name starts with ``aten::``). Measured on
2026-12-01 (torch 2.13): the autograd reference issues 135,790 such events, the eager scan operator 96,722.
The ceiling leaves 5% of room over the scan's count and sits far below the reference's, so a change that
brings back per-chunk autograd work (or many new small ops per chunk) fails here.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCAN_CEILING = 101_500
LENGTH = 512

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]


def _count_ops():
    spec = importlib.util.spec_from_file_location("count_ops", ROOT / "scripts" / "count_ops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.count_ops


def test_scan_op_count_stays_under_ceiling():
    count_ops = _count_ops()
    scan = count_ops("lmm", LENGTH, memory=dict(impl="scan", compile=False))["aten"]
    assert scan <= SCAN_CEILING, f"{scan} ATen ops > ceiling {SCAN_CEILING}"


def test_scan_issues_fewer_ops_than_the_reference():
    count_ops = _count_ops()
    scan = count_ops("lmm", LENGTH, memory=dict(impl="scan", compile=False))["aten"]
    ref = count_ops("lmm", LENGTH, memory=dict(impl="autograd"))["aten"]
    assert scan < 0.8 * ref, (scan, ref)
