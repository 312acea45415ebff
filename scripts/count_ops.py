#!/usr/bin/env python
"""Count the ATen ops of one forward+backward of a tiny model (a count, not a timing: deterministic).

    python scripts/count_ops.py                       # LMM, MAC, Transformer++ at 1K tokens, vocab 4096
    python scripts/count_ops.py --variants lmm --length 1024 --impl autograd

Counts the torch.profiler events whose name starts with ``aten::`` (nested ones included, as the profiler
records them) during ``model(input_ids=x, labels=x).loss.backward()`` at batch 1, after one warm-up step, and,
for a compiled memory, the number of compiled-kernel calls beside it (on a GPU each is a kernel launch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def count_ops(variant: str, length: int, vocab: int = 4096, size: str = "tiny", memory: dict | None = None,
              seed: int = 0) -> dict:
    """{'aten': number of aten:: events, 'all': every profiler event, 'compiled': compiled-kernel events}."""
    from titans.models.sizes import build_causal_lm

    torch.manual_seed(seed)
    overrides = {"memory": memory} if memory else {}
    model = build_causal_lm(variant, size, vocab_size=vocab, **overrides)
    model.train()
    x = torch.randint(0, vocab, (1, length))
    model(input_ids=x, labels=x).loss.backward()  # warm-up (compilation, first-call work)
    model.zero_grad(set_to_none=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(input_ids=x, labels=x).loss.backward()
    names = [e.name for e in prof.events()]
    compiled = sum(1 for n in names if n.startswith(("cpp_fused", "triton_", "kernel_cpp", "Torch-Compiled")))
    return dict(aten=sum(1 for n in names if n.startswith("aten::")), all=len(names), compiled=compiled)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["lmm", "mac", "transformer"])
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--size", default="tiny")
    p.add_argument("--impl", default=None, help="MemoryConfig.impl for the memory variants (default: the config's)")
    p.add_argument("--compile", action="store_true", help="MemoryConfig.compile=True for the memory variants")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = {}
    print(f"| variant | aten ops | all profiler events | compiled-kernel events |  (size={args.size}, "
          f"length={args.length}, vocab={args.vocab}, impl={args.impl or 'default'}, compile={args.compile})")
    print("|---|---|---|---|")
    for v in args.variants:
        memory = {}
        if v not in ("transformer", "swa"):
            if args.impl:
                memory["impl"] = args.impl
            if args.compile:
                memory["compile"] = True
        r = count_ops(v, args.length, args.vocab, args.size, memory or None)
        rows[v] = r
        print(f"| {v} | {r['aten']:,} | {r['all']:,} | {r['compiled']:,} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
