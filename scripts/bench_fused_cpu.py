#!/usr/bin/env python
"""The fused CPU memory kernel (impl="fused_cpu") against the torch scan (impl="scan"): ATen op counts and speed.

    python scripts/bench_fused_cpu.py                        # 1K and 4K tokens, 1 thread, 5 rounds
    python scripts/bench_fused_cpu.py --lengths 1024 --rounds 3 --threads 2

1. Op counts (deterministic): one forward+backward of the tiny LMM and MAC at 1K tokens (as scripts/count_ops.py
   counts them: every profiler event named aten::*) with each implementation.
2. Speed of the memory alone (NeuralMemory forward+backward, depth-2 memory with expansion 4, 4 heads, chunk 16,
   float32; --setting bench: scripts/bench_memory.py's dim 256, batch 2; tiny: the tiny models' dim 128, batch 1), both implementations in ONE process,
   interleaved round by round (scan, fused, scan, fused, ...) after a warm-up each, so that a busy, shared CPU
   slows both alike; it reports the median tokens/s of each and the median of the per-round ratios. Timings are
   noisy on a shared machine: compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADS, DEPTH, EXPANSION, CHUNK = 4, 2, 4, 16
SETTINGS = {"bench": (256, 2), "tiny": (128, 1)}  # (dim, batch): scripts/bench_memory.py's, the tiny models' memory
IMPLS = ("scan", "fused_cpu")


def op_counts(length: int) -> dict:
    from scripts.count_ops import count_ops

    return {(v, impl): count_ops(v, length, memory=dict(impl=impl))["aten"]
            for v in ("lmm", "mac") for impl in IMPLS}


def speed(lengths: list[int], rounds: int, dim: int, batch: int) -> dict:
    from titans.memory import MemoryConfig, NeuralMemory

    mems = {}
    for impl in IMPLS:
        torch.manual_seed(0)
        mems[impl] = NeuralMemory(dim, MemoryConfig(num_heads=HEADS, depth=DEPTH, expansion=EXPANSION,
                                                    chunk_size=CHUNK, impl=impl))

    def step(impl, x):
        mem = mems[impl]
        mem.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        mem(x)[0].pow(2).mean().backward()
        return time.perf_counter() - t0

    out = {}
    for length in lengths:
        x = torch.randn(batch, length, dim)
        for impl in IMPLS:
            step(impl, x)  # warm-up (and the kernel's one-time build)
        times = {impl: [] for impl in IMPLS}
        for _ in range(rounds):
            for impl in IMPLS:
                times[impl].append(step(impl, x))
        toks = batch * length
        out[length] = dict(
            scan=toks / statistics.median(times["scan"]), fused=toks / statistics.median(times["fused_cpu"]),
            ratio=statistics.median(s / f for s, f in zip(times["scan"], times["fused_cpu"])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096], help="sequence lengths of the speed run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per length")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the kernel's OpenMP threads too)")
    p.add_argument("--setting", choices=sorted(SETTINGS), default="bench",
                   help="bench: dim 256 (4 heads of 64), batch 2 (scripts/bench_memory.py); tiny: dim 128 (4 heads "
                        "of 32), batch 1 (the memory of the tiny models)")
    p.add_argument("--no-counts", action="store_true", help="skip the op counts")
    p.add_argument("--no-speed", action="store_true", help="skip the speed run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.no_counts:
        counts = op_counts(1024)
        print("| model (tiny, 1K tokens) | aten ops, torch scan | aten ops, fused_cpu |\n|---|---|---|")
        for v in ("lmm", "mac"):
            print(f"| {v} | {counts[(v, 'scan')]:,} | {counts[(v, 'fused_cpu')]:,} |", flush=True)
    if not args.no_speed:
        dim, batch = SETTINGS[args.setting]
        res = speed(args.lengths, args.rounds, dim, batch)
        print(f"\nmemory alone, forward+backward, dim {dim}, {HEADS} heads, depth {DEPTH}, chunk {CHUNK}, batch "
              f"{batch}, float32, {args.threads} thread(s), {args.rounds} interleaved rounds (median)")
        print("| tokens | torch scan tok/s | fused_cpu tok/s | fused / scan (median of rounds) |\n|---|---|---|---|")
        for length, r in res.items():
            print(f"| {length} | {r['scan']:.0f} | {r['fused']:.0f} | {r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
