#!/usr/bin/env python
"""Benchmark the Titans neural memory (forward + backward) against titans-pytorch's NeuralMemory.

Prints a markdown table of tokens/s (forward+backward, batch * length / wall time) and peak memory for each
sequence length and chunk size, for titans.memory.NeuralMemory and (if installed) titans-pytorch==0.5.5 at matched
settings: dim 256, 4 heads (head_dim 64), depth-2 MLP memory with expansion 4, batch 2, and titans-pytorch's
chunk_size = batch_size = our chunk size (weights updated every chunk, the paper's chunk rule).

Method
- Every (implementation, chunk, length) runs in a fresh subprocess: one small warm-up step (256 tokens), then two
  timed forward+backward steps at the full length; the faster counts (the first one also pays for first-touch
  page faults of fresh memory, which a training loop pays once).
- Peak memory = peak RSS of the process during the first full-length step (getrusage ru_maxrss) minus its RSS
  just before it: the growth caused by activations, saved tensors and gradients (model and input allocated before).
  Measured on the first step because jemalloc keeps freed pages, so later steps can only show allocator retention.
- Allocator: glibc's malloc returns large blocks to the OS after every step and faults them back in; by default the
  workers run with jemalloc (LD_PRELOAD, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1) when libjemalloc.so.2 is
  installed (Debian: apt-get install -y libjemalloc2), else tcmalloc, else glibc.  Both implementations always run
  under the same allocator; the table header states which.
- Threads: --threads (default 1).  On a shared, busy CPU, OpenMP's spin-waiting makes 2 threads many times slower
  than 1 for these small per-chunk ops; the worker also sets OMP_WAIT_POLICY=PASSIVE.
- titans-pytorch gets slower per token as the sequence grows (it concatenates per-chunk updates); rows whose
  estimated time exceeds --baseline-budget seconds are skipped and marked as such.

Implementations: --impls titans (the scan operator, default), titans-compiled (the same with compile=True),
titans-autograd (the autograd reference path), comma-separated; titans-pytorch is added when installed.

Usage: python scripts/bench_memory.py [--lengths 1024,2048] [--chunks 16,64] [--quick] [--no-baseline]
                                      [--json OUT] [--threads 1] [--allocator auto|glibc|jemalloc|tcmalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ALLOCATOR_PATHS = {
    "jemalloc": ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                 "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2"],
    "tcmalloc": ["/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
                 "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/libtcmalloc_minimal.so.4"],
}
DIM, HEADS, DEPTH, EXPANSION, BATCH = 256, 4, 2, 4, 2
# our implementations: the scan operator (default), the same compiled, and the autograd reference
OUR_IMPLS = {"titans": {}, "titans-compiled": dict(compile=True), "titans-autograd": dict(impl="autograd")}
NAMES = {"titans": "titans (ours, scan)", "titans-compiled": "titans (ours, scan, compiled)",
         "titans-autograd": "titans (ours, autograd reference)", "titans-pytorch": "titans-pytorch 0.5.5"}


# ----------------------------------------------------------------------------------------------- worker
def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _build(impl: str, chunk: int):
    if impl in OUR_IMPLS:
        from titans.memory import MemoryConfig, NeuralMemory

        mem = NeuralMemory(DIM, MemoryConfig(num_heads=HEADS, depth=DEPTH, expansion=EXPANSION, chunk_size=chunk,
                                             **OUR_IMPLS[impl]))
        return mem, lambda x: mem(x)[0]
    from titans_pytorch import NeuralMemory as TPNeuralMemory

    mem = TPNeuralMemory(dim=DIM, chunk_size=chunk, batch_size=chunk, heads=HEADS, dim_head=DIM // HEADS,
                         default_model_kwargs=dict(depth=DEPTH, expansion_factor=float(EXPANSION)))
    return mem, lambda x: mem(x)[0]


def worker(impl: str, chunk: int, length: int, threads: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mem, run = _build(impl, chunk)

    def step(x):
        mem.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        y = run(x)
        t1 = time.perf_counter()
        y.float().pow(2).mean().backward()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    step(torch.randn(BATCH, 256, DIM))  # warm-up
    x = torch.randn(BATCH, length, DIM)
    rss0 = _rss_kb()
    best = step(x)
    # peak of the first full step in a fresh process: what the step needs (later steps reuse the allocator's pages)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    second = step(x)  # runs on memory the allocator already holds (steady state, as in a training loop)
    if sum(second) < sum(best):
        best = second
    fwd, bwd = best
    return dict(impl=impl, chunk=chunk, length=length, batch=BATCH, fwd_s=fwd, bwd_s=bwd,
                tokens_per_s=BATCH * length / (fwd + bwd), peak_mb=max(0, peak_kb - rss0) / 1024)


# ----------------------------------------------------------------------------------------------- driver
def pick_allocator(choice: str) -> tuple[str, dict]:
    if choice == "glibc":
        return "glibc malloc (system default)", {}
    names = ["jemalloc", "tcmalloc"] if choice == "auto" else [choice]
    for name in names:
        for path in ALLOCATOR_PATHS[name]:
            if os.path.exists(path):
                env = {"LD_PRELOAD": path}
                if name == "jemalloc":
                    env["MALLOC_CONF"] = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
                    return f"jemalloc ({path}, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1)", env
                return f"tcmalloc ({path})", env
    if choice != "auto":
        sys.exit(f"--allocator {choice}: library not found (Debian: apt-get install -y libjemalloc2 / "
                 f"libtcmalloc-minimal4); use --allocator glibc or auto")
    return "glibc malloc (system default; no jemalloc/tcmalloc found: apt-get install -y libjemalloc2)", {}


def run_worker(impl, chunk, length, threads, env_extra, timeout) -> dict:
    env = dict(os.environ, **env_extra, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", f"{impl},{chunk},{length}", "--threads", str(threads)]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(impl=impl, chunk=chunk, length=length, error=f"timeout after {timeout}s")
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["?"]
        return dict(impl=impl, chunk=chunk, length=length, error=f"exit {out.returncode}: {tail[0]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("titans_pytorch") is not None
    except Exception:
        return False


def fmt_row(r: dict, ours: dict | None) -> str:
    name = NAMES[r["impl"]]
    if "error" in r or "skipped" in r:
        return f"| {name} | {r['chunk']} | {r['length']} | - | - | - | - | {r.get('error') or r.get('skipped')} |"
    speed = ""
    if ours is not None and "tokens_per_s" in ours and r["impl"] != "titans":
        speed = f"scan {ours['tokens_per_s'] / r['tokens_per_s']:.2f}x faster"
    return (f"| {name} | {r['chunk']} | {r['length']} | {r['tokens_per_s']:.0f} | {r['fwd_s']:.2f} | "
            f"{r['bwd_s']:.2f} | {r['peak_mb']:.0f} | {speed} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    ap.add_argument("--chunks", default="16,64")
    ap.add_argument("--quick", action="store_true", help="lengths 1024,2048 only")
    ap.add_argument("--no-baseline", action="store_true", help="skip titans-pytorch")
    ap.add_argument("--impls", default="titans", help="ours, comma-separated: titans (scan), titans-compiled, "
                    "titans-autograd (the reference)")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--allocator", default="auto", choices=["auto", "glibc", "jemalloc", "tcmalloc"])
    ap.add_argument("--baseline-budget", type=float, default=420.0,
                    help="skip a titans-pytorch row whose estimated time exceeds this many seconds")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-row subprocess timeout (s)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        impl, chunk, length = args.worker.split(",")
        print(json.dumps(worker(impl, int(chunk), int(length), args.threads)))
        return

    lengths = [1024, 2048] if args.quick else [int(v) for v in args.lengths.split(",")]
    chunks = [int(v) for v in args.chunks.split(",")]
    alloc_desc, alloc_env = pick_allocator(args.allocator)
    impls = args.impls.split(",")
    unknown = sorted(set(impls) - set(OUR_IMPLS))
    if unknown:
        sys.exit(f"--impls: unknown {unknown}; choose from {sorted(OUR_IMPLS)}")
    if impls[0] != "titans":
        impls.insert(0, "titans")
    baseline_note = ""
    if args.no_baseline:
        baseline_note = "titans-pytorch skipped (--no-baseline)"
    elif not baseline_available():
        baseline_note = "titans-pytorch not installed (pip install titans-pytorch==0.5.5): baseline rows skipped"
    else:
        impls.append("titans-pytorch")

    print("# NeuralMemory forward+backward benchmark\n")
    print(f"- dim {DIM}, heads {HEADS}, memory depth {DEPTH} (expansion {EXPANSION}), batch {BATCH}, float32, CPU")
    print(f"- allocator: {alloc_desc}")
    print(f"- threads: {args.threads} (OMP_WAIT_POLICY=PASSIVE); cpu count {os.cpu_count()}")
    print("- time: faster of two full-length fwd+bwd steps; peak memory: RSS growth during the first step "
          "(ru_maxrss minus RSS before it); fresh process per row")
    if baseline_note:
        print(f"- {baseline_note}")
    print()
    print("| implementation | chunk | length | tokens/s | fwd s | bwd s | peak MB | note |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for chunk in chunks:
        ours_by_len = {}
        for impl in impls:
            prev = None
            for length in lengths:
                if impl == "titans-pytorch" and prev is not None and "tokens_per_s" in prev:
                    prev_time = BATCH * prev["length"] / prev["tokens_per_s"]
                    est = 2 * prev_time * (length / prev["length"]) ** 2  # 2 steps; its cost grows ~quadratically
                    if est > args.baseline_budget:
                        r = dict(impl=impl, chunk=chunk, length=length,
                                 skipped=f"skipped: estimated {est:.0f}s > --baseline-budget {args.baseline_budget:.0f}s")
                        results.append(r)
                        print(fmt_row(r, None), flush=True)
                        continue
                r = run_worker(impl, chunk, length, args.threads, alloc_env, args.timeout)
                results.append(r)
                if impl == "titans":
                    ours_by_len[length] = r
                print(fmt_row(r, ours_by_len.get(length)), flush=True)
                prev = r if "tokens_per_s" in r else prev
    print()
    summary = []
    for chunk in chunks:
        ours = {r["length"]: r for r in results if r["impl"] == "titans" and r["chunk"] == chunk and "tokens_per_s" in r}
        if len(ours) >= 2:
            lo, hi = min(ours), max(ours)
            summary.append(f"- chunk {chunk}: tokens/s at {hi} = {ours[hi]['tokens_per_s'] / ours[lo]['tokens_per_s']:.2f}"
                           f" x tokens/s at {lo}; peak MB per 1K tokens: "
                           + ", ".join(f"{n}: {ours[n]['peak_mb'] / (n / 1024):.0f}" for n in sorted(ours)))
    for line in summary:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(allocator=alloc_desc, threads=args.threads, results=results),
                                              indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
