#!/usr/bin/env python
"""Training and generation throughput of every architecture on CPU, as a markdown table.

    python scripts/bench_models.py                       # lengths 1K..16K, size tiny
    python scripts/bench_models.py --quick               # 1K and 4K, fewer variants' repeats
    python scripts/bench_models.py --lengths 1024 8192 --variants mac transformer --threads 2

Training: one forward+backward of a [1, L] batch (labels = inputs, the fused LM-head loss that training
uses: ``return_logits=False``; --full-logits for the unfused baseline) after a short warm-up step, best
of --repeats, tokens/s and the peak resident memory added by the step (each measurement runs in a fresh subprocess, so
ru_maxrss is a clean high-water mark). Generation: prefill a prompt of L tokens with the cache,
(last-position logits only, as generate() does), then time --new-tokens greedy steps one token at a
time; ms per generated token.
All variants use the same size (same width and depth; parameters matched through the FFN width).
The memory allocator is glibc malloc (the default) for every row.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEFAULT_VARIANTS = ["transformer", "swa", "mac", "mag", "mal", "lmm"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _build(args, variant):
    import torch

    from titans.models import build_causal_lm
    from titans.models.variants import variant_spec

    torch.manual_seed(0)
    overrides = {}
    if args.segment_len:
        overrides["segment_len"] = args.segment_len
    if args.window:
        overrides["window"] = args.window
    if variant_spec(variant).uses_memory:
        memory = dict(impl=args.impl, compile=args.compile)
        if args.checkpoint_group:
            memory["checkpoint_group"] = args.checkpoint_group
        overrides["memory"] = memory
    return build_causal_lm(variant, args.size, vocab_size=args.vocab, **overrides)


def worker(args) -> dict:
    import torch

    from titans.models import output_cache

    torch.set_num_threads(args.threads)
    model = _build(args, args.variant)
    x = torch.randint(0, args.vocab, (1, args.length))
    if args.mode == "train":
        model.train()
        # first-call overheads (allocations, kernel selection, compilation of every chunk-step graph: lengths
        # above 1K take the grouped-backward path, hence up to 2K tokens)
        warm = x[:, :min(args.length, 2048)]
        model(warm, labels=warm, return_logits=args.full_logits).loss.backward()
        model.zero_grad(set_to_none=True)
        base = _rss_mb()
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            loss = model(x, labels=x, return_logits=args.full_logits).loss
            loss.backward()
            best = min(best, time.perf_counter() - t)
            model.zero_grad(set_to_none=True)
            del loss
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return dict(tok_s=args.length / best, peak_mb=peak - base)
    model.eval()
    with torch.no_grad():
        out = model(x, use_cache=True, logits_to_keep=1)  # as generate() does: no [L, vocab] prefill logits
        cache, nxt = output_cache(out), out.logits[:, -1:].argmax(-1)
        model(nxt, past_key_values=cache, use_cache=True)  # warm-up step
        t = time.perf_counter()
        for _ in range(args.new_tokens):
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache, nxt = output_cache(out), out.logits[:, -1:].argmax(-1)
        per_token = (time.perf_counter() - t) / args.new_tokens
    return dict(ms_per_token=1000 * per_token)


ATTENTION = ("transformer", "swa")
IMPLS = {"scan": ("scan", False), "compiled": ("scan", True), "autograd": ("autograd", False)}


def _with_impl(args, impl: str):
    """A copy of args with the memory implementation ``impl`` (scan | compiled | autograd)."""
    out = argparse.Namespace(**vars(args))
    out.impl, out.compile = IMPLS[impl]
    return out


def run_one(args, variant, length, mode) -> dict:
    cmd = ([sys.executable, __file__, "--worker", "--variant", variant, "--length", str(length), "--mode", mode,
           "--size", args.size, "--vocab", str(args.vocab), "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens),
           "--segment-len", str(args.segment_len or 0), "--window", str(args.window or 0),
           "--checkpoint-group", str(args.checkpoint_group), "--impl", args.impl]
           + (["--full-logits"] if args.full_logits else []) + (["--compile"] if args.compile else []))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode:
        return dict(error=proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc={proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--gen-lengths", type=int, nargs="+", default=None, help="prompt lengths (default: --lengths)")
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    p.add_argument("--size", default="tiny")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--segment-len", type=int, default=512,
                   help="MAC segment (default: the paper's 512, which docs/speed.md's tables used)")
    p.add_argument("--window", type=int, default=0, help="SWA window (default: config default 2048)")
    p.add_argument("--checkpoint-group", type=int, default=0,
                   help="memory variants: MemoryConfig.checkpoint_group (chunks between states saved for the backward)")
    p.add_argument("--impl", default="scan", choices=["scan", "autograd"],
                   help="memory variants: MemoryConfig.impl (scan operator or the autograd reference)")
    p.add_argument("--compile", action="store_true", help="memory variants: MemoryConfig.compile=True")
    p.add_argument("--impls", default=None,
                   help="memory variants: several implementations, one row each, e.g. autograd,scan,compiled "
                        "(compiled = scan with compile=True); overrides --impl/--compile for the training table")
    p.add_argument("--full-logits", action="store_true",
                   help="baseline: train through the [L, vocab] logits and F.cross_entropy instead of the fused loss")
    p.add_argument("--quick", action="store_true", help="lengths 1K and 4K, one repeat, 8 new tokens")
    p.add_argument("--no-gen", action="store_true", help="skip the generation table")
    p.add_argument("--no-train", action="store_true", help="skip the training table")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["train", "gen"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.lengths, args.repeats, args.new_tokens = [1024, 4096], 1, 8
    gen_lengths = args.gen_lengths or args.lengths

    print(f"# bench_models: size={args.size} vocab={args.vocab} threads={args.threads} allocator=glibc malloc "
          f"checkpoint_group={args.checkpoint_group} impls={args.impls or (args.impl + (' compiled' if args.compile else ''))} "
          f"loss={'full logits' if args.full_logits else 'fused'}\n")
    impls = args.impls.split(",") if args.impls else [("compiled" if args.compile else args.impl)]
    for v in [] if args.no_train else args.variants:
        if v == args.variants[0]:
            print("## Training (forward+backward, batch 1): tokens/s | peak MB added by the step\n")
            print("| variant | " + " | ".join(_k(n) for n in args.lengths) + " |")
            print("|---|" + "---|" * len(args.lengths))
        for impl in (impls if v not in ATTENTION else impls[:1]):
            cells = []
            for n in args.lengths:  # the implementations of one variant run one after the other, per length
                r = run_one(_with_impl(args, impl), v, n, "train")
                cells.append(r.get("error", "")[:40] if "error" in r else f"{r['tok_s']:.0f} tok/s, {r['peak_mb']:.0f} MB")
            name = v if v in ATTENTION or len(impls) == 1 else f"{v} ({impl})"
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.no_gen:
        return
    print(f"\n## Generation with the cache: ms per token (greedy, {args.new_tokens} tokens after the prompt)\n")
    print("| variant | " + " | ".join(f"prompt {_k(n)}" for n in gen_lengths) + " |")
    print("|---|" + "---|" * len(gen_lengths))
    for v in args.variants:
        cells = []
        for n in gen_lengths:
            r = run_one(args, v, n, "gen")
            cells.append(r.get("error", "")[:40] if "error" in r else f"{r['ms_per_token']:.1f} ms")
        print(f"| {v} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
