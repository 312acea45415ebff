#!/usr/bin/env python
"""Training throughput (tokens/s) of every architecture: the paper's Figure 9 and, for the memory depth, Figure 8.

Three sweeps, one training step each (forward, backward through the fused LM-head loss, AdamW step) on random tokens,
best of --repeats after one warm-up step of the same shape:

    length          tokens/s against the sequence length at --batch sequences per step;
    batch_x_length  a fixed number of tokens per step (--tokens) as batch x length (16 x 1K, ..., 1 x 16K), the
                    paper's x-axis;
    depth           Titans (LMM) with a memory of depth 1-4 against the sequence length (Figure 8); the rest of the
                    model is the same at every depth (no parameter matching).

Models: Transformer++ (transformer), SWA, the linear-memory baselines (DeltaNet, Gated DeltaNet, TTT from the same
memory code), Titans LMM, MAC, MAG and MAL, all of one size (parameters matched through the SwiGLU width). MAC's
segment (512) and the sliding window (2048) are the paper's unless --segment-len / --window say otherwise.
Each model runs in a fresh subprocess. Writes ``throughput_<device>_<size>_<date>.{json,md,png}`` under
--output-dir (default experiments/results/throughput/).

    python scripts/bench_throughput.py                                    # CPU: tiny, 256..2K, 1 thread
    python scripts/bench_throughput.py --device cuda --size 340m --lengths 2048 4096 8192 16384 --tokens 65536 \\
        --dtype bfloat16 --compile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["transformer", "swa", "deltanet", "gated_deltanet", "ttt", "lmm", "mac", "mag", "mal"]
SWEEPS = ("length", "batch_x_length", "depth")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=SWEEPS)
    p.add_argument("--size", default="tiny")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--batch", type=int, default=1, help="sequences per step of the length and depth sweeps")
    p.add_argument("--tokens", type=int, default=None,
                   help="tokens per step of the batch_x_length sweep (default: the longest length)")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--segment-len", type=int, default=512)
    p.add_argument("--window", type=int, default=2048)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="autocast dtype of the step (bfloat16: CUDA; parameters stay float32)")
    p.add_argument("--compile", action="store_true", help="MemoryConfig.compile=True (torch.compile of the chunk step)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per model and sweep")
    p.add_argument("--output-dir", default=str(ROOT / "experiments" / "results" / "throughput"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # JSON: these settings and one job
    return p.parse_args(argv)


def shapes(args, sweep: str) -> list[tuple[int, int]]:
    """(batch, length) of each step of ``sweep``."""
    if sweep == "batch_x_length":
        total = args.tokens or max(args.lengths)
        return [(total // n, n) for n in sorted(args.lengths) if total % n == 0 and total // n >= 1]
    return [(args.batch, n) for n in sorted(args.lengths)]


def jobs(args) -> list[dict]:
    out = []
    for sweep in args.sweeps:
        if sweep == "depth":
            out += [dict(sweep=sweep, model="lmm", depth=d) for d in args.depths]
        else:
            out += [dict(sweep=sweep, model=m, depth=None) for m in args.models]
    return out


def build(args, model: str, depth: int | None):
    import torch

    from titans.models import build_causal_lm
    from titans.models.variants import variant_spec

    torch.manual_seed(0)
    kwargs = dict(segment_len=args.segment_len, window=args.window)
    if variant_spec(model).uses_memory:
        kwargs["memory"] = dict(compile=args.compile, **({"depth": depth} if depth else {}))
    # the depth sweep keeps everything but the memory as it is (the SwiGLU of the default LMM): its cost is the
    # memory's; the other sweeps match every model to the Transformer++ parameter count
    match = depth is None
    return build_causal_lm(model, args.size, vocab_size=args.vocab, match_params=match, **kwargs).to(args.device)


def measure(args, job: dict) -> list[dict]:
    """Tokens/s of each shape of the job's sweep, in this process."""
    import torch

    torch.set_num_threads(args.threads)
    model = build(args, job["model"], job["depth"]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cuda = args.device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and args.dtype == "bfloat16")

    def step(x):
        with autocast:
            loss = model(x, labels=x, return_logits=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rows = []
    for batch, length in shapes(args, job["sweep"]):
        x = torch.randint(0, args.vocab, (batch, length), device=args.device)
        row = dict(job, batch=batch, length=length, tokens=batch * length)
        try:
            step(x)  # warm-up: allocations, kernel choice, compilation of this shape
            best = float("inf")
            for _ in range(args.repeats):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                step(x)
                if cuda:
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            row["tok_s"] = batch * length / best
            if cuda:
                row["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()
        except torch.OutOfMemoryError:
            row["error"] = "out of memory"
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def run_job(args, job: dict) -> list[dict]:
    settings = {k: v for k, v in vars(args).items() if k != "worker"}
    cmd = [sys.executable, __file__, "--worker", json.dumps({"settings": settings, "job": job})]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return [dict(job, error=f"timeout after {args.timeout} s")]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode and not rows:
        tail = proc.stderr.strip().splitlines()
        rows = [dict(job, error=tail[-1][:200] if tail else f"exit status {proc.returncode}")]
    return rows


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda (unavailable)"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def markdown(record: dict) -> str:
    from titans.models.variants import display_name

    lines = [f"# Training throughput (tokens/s): {record['device']}, size {record['settings']['size']}, "
             f"{record['settings']['dtype']}, {record['settings']['threads']} thread(s), "
             f"{record['created_utc'][:10]}, commit {str(record['git_commit'])[:7]}"]
    if record.get("load_average_before"):
        lines.append(f"\n1-minute load average {record['load_average_before'][0]:.1f} before, "
                     f"{record.get('load_average_after', [float('nan')])[0]:.1f} after")
    for sweep in record["settings"]["sweeps"]:
        rows = [r for r in record["results"] if r["sweep"] == sweep]
        if not rows:
            continue
        shapes_ = sorted({(r["batch"], r["length"]) for r in rows if "length" in r}, key=lambda s: s[1])
        header = [f"{b} x {_k(n)}" if sweep == "batch_x_length" else _k(n) for b, n in shapes_]
        lines += ["", f"## {sweep}", "", "| model | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
        for key in dict.fromkeys((r["model"], r.get("depth")) for r in rows):
            name = display_name(key[0]) + (f" depth {key[1]}" if key[1] else "")
            cells = []
            for shape in shapes_:
                hit = [r for r in rows if (r["model"], r.get("depth")) == key and (r.get("batch"), r.get("length"))
                       == shape]
                cells.append(f"{hit[0]['tok_s']:.0f}" if hit and "tok_s" in hit[0]
                             else (hit[0].get("error", "-")[:30] if hit else "-"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.worker:
        work = json.loads(args.worker)
        measure(argparse.Namespace(**work["settings"]), work["job"])
        return 0
    from titans.eval.plots import throughput_plot
    from titans.eval.results import git_commit

    commit, dirty = git_commit()
    record = {"kind": "throughput", "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "git_commit": commit, "git_dirty": dirty, "device": device_name(args.device),
              "allocator": "glibc malloc" if not args.device.startswith("cuda") else "PyTorch CUDA caching allocator",
              "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "output_dir")},
              "load_average_before": list(os.getloadavg()), "results": []}
    from titans.progress import heartbeat, progress

    bar = progress(list(jobs(args)), desc="throughput", unit="job")
    for job in bar:
        with heartbeat(bar):
            rows = run_job(args, job)
        record["results"] += rows
        done = ", ".join(f"{_k(r['length'])}: {r['tok_s']:.0f}" if "tok_s" in r else r.get("error", "?")
                         for r in rows)
        bar.write(f"[throughput] {job['sweep']} {job['model']}{' depth ' + str(job['depth']) if job['depth'] else ''}: "
                  f"{done}", file=sys.stdout)
    record["load_average_after"] = list(os.getloadavg())  # other processes on a shared machine skew CPU timings
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    stem = f"throughput_{device}_{args.size}_{record['created_utc'][:10]}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = markdown(record)
    (out / f"{stem}.md").write_text(text)
    throughput_plot(record, out / f"{stem}.png")
    print(text)
    for suffix in ("json", "md", "png"):
        print(f"Written to {out / stem}.{suffix}")
    return 0 if all("tok_s" in r for r in record["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
