#!/usr/bin/env python
"""Training throughput of `python train.py` (the embedded default unless overrides are given), for one or more
checkouts of this repository in one run, e.g. an older commit against the working tree:

    git worktree add /tmp/titans-old <commit>
    python scripts/bench_train.py --runs old=/tmp/titans-old new=. compiled=.:model.net.memory.compile=true

A run is NAME=PATH[:OVERRIDE,OVERRIDE...]: a checkout and the Hydra overrides only it gets. Each round runs every
run once, in turn (old, new, old, new, ...), each in a fresh process with the same interpreter, the common
overrides (a CSV logger, no validation, no checkpoints, plus the positional ones) and its own code on PYTHONPATH.
Tokens/s is the median of the logged ``train/tokens_per_sec`` (optimizer steps after --skip warm-up steps).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(repo: Path, steps: int, skip: int, threads: int, overrides: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench_train_"))
    cmd = [sys.executable, str(repo / "train.py"), f"trainer.max_steps={steps}", "logger=csv",
           "trainer.limit_val_batches=0", "trainer.log_every_n_steps=1", "callbacks=none",
           "+trainer.enable_checkpointing=false", f"hydra.run.dir={out}", *overrides]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS=str(threads), WANDB_MODE="offline",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(error=" | ".join(tail))
    rows = []
    for f in out.rglob("metrics.csv"):
        with open(f) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("train/tokens_per_sec")]
    rates = [float(r["train/tokens_per_sec"]) for r in rows if int(r["step"]) >= skip]
    if not rates:
        return dict(error=f"no train/tokens_per_sec rows after step {skip} in {out}")
    return dict(tok_s=statistics.median(rates), n=len(rates), wall_s=wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True,
                   help="NAME=PATH[:OVERRIDE,...] (the first is the baseline)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="warm-up optimizer steps left out of the median")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. model=lmm")
    args = p.parse_args()
    runs = []
    for spec in args.runs:
        name, _, rest = spec.partition("=")
        path, _, extra = rest.partition(":")
        if not name or not path or not (Path(path) / "train.py").is_file():
            sys.exit(f"error: --runs {spec!r}: expected NAME=PATH[:OVERRIDE,...] with PATH a checkout holding train.py")
        runs.append((name, Path(path).resolve(), [o for o in extra.split(",") if o]))
    results: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    print(f"# bench_train: {args.steps} steps (median after step {args.skip}), threads={args.threads}, "
          f"common overrides={args.overrides or 'none (the embedded default)'}\n")
    for rnd in range(args.rounds):
        for name, repo, extra in runs:
            r = run_once(repo, args.steps, args.skip, args.threads, args.overrides + extra)
            if "error" in r:
                sys.exit(f"error: {name} ({repo}): {r['error']}")
            results[name].append(r["tok_s"])
            print(f"round {rnd + 1}: {name}: {r['tok_s']:.0f} tokens/s (median of {r['n']} steps, "
                  f"wall {r['wall_s']:.0f} s)", flush=True)
    base = statistics.median(results[runs[0][0]])
    print("\n| run | checkout | overrides | tokens/s (median over rounds) | vs first |\n|---|---|---|---|---|")
    for name, repo, extra in runs:
        med = statistics.median(results[name])
        print(f"| {name} | {repo} | {' '.join(extra) or '-'} | {med:.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
