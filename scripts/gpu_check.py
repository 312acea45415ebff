#!/usr/bin/env python
"""One-shot GPU check (``make gpu-check``; scripts/gpu_check.sh): tests, memory-scan and model throughput on one GPU.

    python scripts/gpu_check.py                 # on a CUDA machine: the whole check, about 8 minutes on one H100/H200
    python scripts/gpu_check.py --cpu           # the harness at tiny sizes on CPU (Triton through its interpreter)
    python scripts/gpu_check.py --sm90          # no GPU needed: compile the Triton kernels for sm_90, report
                                                #   registers, spills and shared memory (ptxas)
Parts, each under its own time limit and a global deadline (--budget seconds), results written after every
measurement to experiments/results/gpu/gpu_check.json and .md (so a failure or a timeout loses nothing before it):
  env      torch / triton versions, the device
  tests    pytest -m gpu on tests/memory/test_memory_triton.py and tests/layers/test_attention_flex.py (compiled
           kernels vs the references on CUDA)
  scan     the memory scan alone (depth 2, expansion 4, momentum and decay, chunk 16, head_dim 64, 12 heads = width
           768): forward+backward time and peak memory at 4K and 16K tokens for the Triton kernels, the compiled
           torch op and the eager torch op (the ratios use the eager op of the same run as the baseline)
  fla      flash-linear-attention's chunk_gated_delta_rule at the same width and lengths (bf16), if fla imports
  models   training tokens/s and peak memory (forward+backward+AdamW step, bf16 autocast, batch 1) of Transformer++,
           SWA, LMM, MAC, MAG and MAL at 170M and 4K context, then 16K; each in its own subprocess
Timing: CUDA events around the call after a warm-up call (which pays Triton / torch.compile compilation), median of
--repeats.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["transformer", "swa", "lmm", "mac", "mag", "mal"]
PAPER_170M = dict(segment_len=512, window=2048, n_persistent=128)


# ----------------------------------------------------------------------------------------------- results
class Results:
    def __init__(self, out_dir: str, mode: str):
        os.makedirs(out_dir, exist_ok=True)
        self.json_path = os.path.join(out_dir, "gpu_check.json" if mode == "gpu" else f"gpu_check_{mode}.json")
        self.md_path = self.json_path[:-5] + ".md"
        self.data = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": {}}

    def put(self, part: str, key: str, value) -> None:
        self.data["parts"].setdefault(part, {})[key] = value
        self.write()

    def write(self) -> None:
        with open(self.json_path, "w") as f:
            json.dump(self.data, f, indent=2, default=str)
        with open(self.md_path, "w") as f:
            f.write(render_markdown(self.data))


def _fmt(v, unit=""):
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if v >= 10 else f"{v:.3g}{unit}"
    return str(v)


def render_markdown(data: dict) -> str:
    parts = data["parts"]
    lines = [f"# GPU check ({data['mode']}, started {data['started']})", ""]
    env = parts.get("env", {})
    if env:
        lines += ["| " + " | ".join(env) + " |", "|" + "---|" * len(env), "| " + " | ".join(map(str, env.values())) + " |", ""]
    for name in ("tests", "sm90"):
        if name in parts:
            lines += [f"## {name}", ""] + [f"- {k}: {_fmt(v)}" for k, v in parts[name].items()] + [""]
    scan = {k: v for k, v in parts.get("scan", {}).items() if isinstance(v, dict)}
    fla = parts.get("fla", {})
    if scan or fla:
        lines += ["## Memory scan (depth 2, chunk 16, head_dim 64, 12 heads) and FLA's chunk_gated_delta_rule", "",
                  "| impl | tokens | fwd+bwd ms | peak MiB | vs eager |", "|---|---|---|---|---|"]
        for key, r in list(scan.items()) + [(k, v) for k, v in fla.items() if isinstance(v, dict)]:
            if "ms" in r:
                lines.append(f"| {r['impl']} | {r['tokens']} | {_fmt(r['ms'])} | {_fmt(r['peak_mib'])} | "
                             f"{_fmt(r.get('speedup_vs_eager', '-'))} |")
            else:
                lines.append(f"| {key} | | {r.get('error', r.get('skipped', ''))} | | |")
        lines += [f"- fla: {v}" for k, v in fla.items() if k == "skipped"] + [""]
    models = parts.get("models", {})
    if models:
        lines += [f"## Training throughput ({env.get('size', '170m')}, bf16 autocast on CUDA, batch 1, AdamW)", "",
                  "| variant | context | tokens/s | peak GiB | vs Transformer++ |", "|---|---|---|---|---|"]
        for key, r in models.items():
            if isinstance(r, dict) and "tok_s" in r:
                lines.append(f"| {r['variant']} | {r['length']} | {r['tok_s']:,.0f} | {r['peak_gib']:.2f} | "
                             f"{_fmt(r.get('vs_transformer', '-'))} |")
            elif isinstance(r, dict):
                lines.append(f"| {key} | | {r.get('error', r.get('skipped', ''))} | | |")
        lines.append("")
    for name, p in parts.items():
        errs = {k: v for k, v in p.items() if k == "error"}
        if errs:
            lines += [f"- {name} error: {errs['error']}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- helpers
class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _device(args):
    import torch

    return torch.device("cuda" if not args.cpu else "cpu")


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, repeats: int):
    """(median ms, peak MiB above the memory in use before the call) of fn() after one warm-up call."""
    import torch

    fn()
    _sync(dev)
    times = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(1000 * (time.perf_counter() - t))
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else float("nan")
    return statistics.median(times), peak


# ----------------------------------------------------------------------------------------------- parts
def part_env(args, res: Results):
    import torch

    env = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
           "size": args.size}
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception as err:  # noqa: BLE001
        env["triton"] = f"unavailable ({type(err).__name__})"
    env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if torch.cuda.is_available():
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    for k, v in env.items():
        res.put("env", k, v)


def part_tests(args, res: Results, deadline: Deadline):
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           "tests/memory/test_memory_triton.py", "tests/layers/test_attention_flex.py"]
    limit = min(args.tests_limit, max(10, deadline.left()))
    t = time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        res.put("tests", "summary", _last_line(proc.stdout))
        res.put("tests", "returncode", proc.returncode)
        fails = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        if fails:
            res.put("tests", "failures", fails[:20])
    except subprocess.TimeoutExpired:
        res.put("tests", "error", f"timed out after {limit:.0f} s")
    res.put("tests", "seconds", round(time.time() - t, 1))


def _scan_problem(T, heads, d, dev):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    N, h = heads, 4 * d

    def r(*s, scale=1.0):
        return (scale * torch.randn(*s, generator=g)).to(dev).requires_grad_()

    q = F.normalize(torch.randn(N, T, d, generator=g), dim=-1).to(dev).requires_grad_()
    k = F.normalize(torch.randn(N, T, d, generator=g), dim=-1).to(dev).requires_grad_()
    v = r(N, T, d)
    gate = lambda: torch.rand(N, T, 1, generator=g).to(dev).requires_grad_()  # noqa: E731
    lr = [(0.01 * torch.rand(N, T, 1, generator=g)).to(dev).requires_grad_() for _ in range(2)]
    log_eta = [torch.log(0.5 + 0.4 * torch.rand(N, T, 1, generator=g)).to(dev).requires_grad_() for _ in range(2)]
    log_decay = [torch.log1p(-0.01 * torch.rand(N, T, 1, generator=g)).to(dev).requires_grad_() for _ in range(2)]
    W = [r(N, d, h), r(N, h, d, scale=1 / math.sqrt(h))]
    S = [r(N, d, h, scale=0.0), r(N, h, d, scale=0.0)]
    lw, lb = r(N, 1, d, scale=0.0), r(N, 1, d, scale=0.0)
    with torch.no_grad():
        lw += 1
    del gate
    return q, k, v, lr, log_eta, log_decay, W, S, lw, lb


def part_scan(args, res: Results, deadline: Deadline):
    import torch

    from titans.memory import memory_scan

    dev = _device(args)
    impls = [("triton", dict(backend="triton")), ("compiled", dict(backend="torch", compile=True)),
             ("eager", dict(backend="torch"))]
    if args.cpu:
        impls = [("triton", dict(backend="triton")), ("eager", dict(backend="torch"))]
    for T in args.scan_lengths:
        prob = _scan_problem(T, args.heads, args.head_dim, dev)
        q, k, v, lr, log_eta, log_decay, W, S, lw, lb = prob
        leaves = [q, k, v, *lr, *log_eta, *log_decay, *W, *S, lw, lb]
        eager_ms = None
        for name, kw in impls:
            key = f"{name}_{T}"
            if deadline.left() < 20:
                res.put("scan", key, {"skipped": "global deadline"})
                continue
            if name == "eager" and dev.type == "cuda" and T > 4096 and "eager_4096" in res.data["parts"].get("scan", {}):
                est = res.data["parts"]["scan"]["eager_4096"].get("ms", 0) * (T / 4096) * (args.repeats + 1) / 1000
                if est > deadline.left() - 120:
                    res.put("scan", key, {"skipped": f"estimated {est:.0f} s exceeds the time left"})
                    continue

            def step():
                # the default forgetting rule (decay toward M_0, memory.decay_target=init): the layer passes M_0
                # as both the initial weights and the target
                y, Wn, Sn = memory_scan(q, k, v, lr, log_eta, log_decay, W, S, chunk_size=16, activation="gelu",
                                        ln_weight=lw, ln_bias=lb, decay_target=W, **kw)
                loss = y.square().sum() + Wn[-1].sum()
                torch.autograd.grad(loss, leaves)

            try:
                ms, peak = timed(step, dev, args.repeats)
                row = dict(impl=name, tokens=T, ms=ms, peak_mib=peak)
                if name == "eager":
                    eager_ms = ms
                res.put("scan", key, row)
            except Exception as err:  # noqa: BLE001 - one backend failing must not lose the others
                res.put("scan", key, {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})
        if eager_ms:
            for name, _ in impls:
                row = res.data["parts"]["scan"].get(f"{name}_{T}", {})
                if "ms" in row:
                    row["speedup_vs_eager"] = eager_ms / row["ms"]
            res.write()


def part_fla(args, res: Results, deadline: Deadline):
    import torch

    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except Exception as err:  # noqa: BLE001
        res.put("fla", "skipped", f"flash-linear-attention does not import ({type(err).__name__}: {err})")
        return
    if args.cpu:
        res.put("fla", "skipped", "GPU only")
        return
    dev = _device(args)
    for T in args.scan_lengths:
        if deadline.left() < 20:
            res.put("fla", f"gdn_{T}", {"skipped": "global deadline"})
            continue
        g = torch.Generator().manual_seed(0)
        B, H, D = 1, args.heads, args.head_dim
        mk = lambda *s: torch.randn(*s, generator=g).to(dev, torch.bfloat16).requires_grad_()  # noqa: E731
        q, k, v = mk(B, T, H, D), mk(B, T, H, D), mk(B, T, H, D)
        with torch.no_grad():
            k /= k.norm(dim=-1, keepdim=True)
            q /= q.norm(dim=-1, keepdim=True)
        gl = torch.nn.functional.logsigmoid(torch.randn(B, T, H, generator=g)).to(dev).requires_grad_()
        beta = torch.rand(B, T, H, generator=g).to(dev, torch.bfloat16).requires_grad_()

        def step():
            o, _ = chunk_gated_delta_rule(q, k, v, gl, beta)
            torch.autograd.grad(o.float().square().sum(), [q, k, v, gl, beta])

        try:
            ms, peak = timed(step, dev, args.repeats)
            eager = res.data["parts"].get("scan", {}).get(f"eager_{T}", {}).get("ms")
            row = dict(impl="fla chunk_gated_delta_rule (bf16)", tokens=T, ms=ms, peak_mib=peak)
            if eager:
                row["speedup_vs_eager"] = eager / ms
            res.put("fla", f"gdn_{T}", row)
        except Exception as err:  # noqa: BLE001
            res.put("fla", f"gdn_{T}", {"error": f"{type(err).__name__}: {str(err).splitlines()[0]}"})


def model_worker(args) -> dict:
    """One (variant, length) training measurement in this process; prints one JSON line."""
    import torch

    from titans.models import build_causal_lm

    dev = _device(args)
    torch.manual_seed(0)
    overrides = {} if args.cpu else dict(PAPER_170M)
    model = build_causal_lm(args.variant, args.size, vocab_size=args.vocab, **overrides).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
    x = torch.randint(0, args.vocab, (1, args.length), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = model(x, labels=x, return_logits=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms, _ = timed(step, dev, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    from titans.memory import dispatch

    return dict(variant=args.variant, length=args.length, tok_s=args.length / (ms / 1000), ms=ms, peak_gib=peak,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                triton_fallback=dispatch._AUTO_FAILED[:1])


def part_models(args, res: Results, deadline: Deadline):
    runs = [(v, args.model_lengths[0]) for v in VARIANTS] + \
           [(v, L) for L in args.model_lengths[1:] for v in VARIANTS]
    for variant, L in runs:
        key = f"{variant}_{L}"
        if deadline.left() < 25:
            res.put("models", key, {"skipped": "global deadline"})
            continue
        limit = min(args.model_limit, deadline.left() - 5)
        cmd = [sys.executable, os.path.abspath(__file__), "--model-worker", "--variant", variant, "--length", str(L),
               "--size", args.size, "--vocab", str(args.vocab), "--repeats", str(args.repeats)] + \
              (["--cpu"] if args.cpu else [])
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
            if proc.returncode:
                res.put("models", key, {"error": _last_line(proc.stderr) or f"rc={proc.returncode}"})
                continue
            row = json.loads(_last_line(proc.stdout))
            base = res.data["parts"].get("models", {}).get(f"transformer_{L}", {}).get("tok_s")
            if base:
                row["vs_transformer"] = row["tok_s"] / base
            res.put("models", key, row)
        except subprocess.TimeoutExpired:
            res.put("models", key, {"error": f"timed out after {limit:.0f} s"})
        except Exception as err:  # noqa: BLE001
            res.put("models", key, {"error": f"{type(err).__name__}: {err}"})


def part_sm90(args, res: Results, deadline: Deadline):
    """Compile the kernels for sm_90 without a GPU (triton's own LLVM and ptxas) at the 170M configuration, each
    without and with the decay target (``name+target``: TGT=True, MemoryConfig.decay_target="init", the default)."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from titans.memory.triton import op

    K = op._load_kernels(False)
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas-blackwell")
    if not os.path.exists(ptxas):
        ptxas = ptxas.replace("ptxas-blackwell", "ptxas")
    ints = {"nc", "nc_upd", "N", "group", "n_saved"}
    d, h = 64, 256
    common = dict(BT=16, MOM=True, DECAY=True, DT=tl.float32)
    deep = dict(common, D=d, HID=h, BH=op.HIDDEN_TILE, CA0=1, CA1=1, ACT=0, DTRUE=48)
    lin = dict(common, D=d, BC=op.COLUMN_TILE, CA=1)
    kernels = ((K.linear_fwd_kernel, dict(lin, SAVE=True)), (K.linear_bwd_kernel, lin),
               (K.deep_fwd_kernel, dict(deep, SAVE=True)), (K.deep_bwd_kernel, deep))
    for fn, const, tgt in [(fn, dict(c, TGT=tgt), tgt) for tgt in (False, True) for fn, c in kernels]:
        name = fn.__name__ + ("+target" if tgt else "")
        if deadline.left() < 60:
            res.put("sm90", name, "skipped: global deadline")
            continue
        t = time.time()
        try:
            names = fn.arg_names
            if "TGT" not in names:  # e.g. an older titans on sys.path (an editable install of another checkout)
                raise RuntimeError(f"the kernels imported from {os.path.dirname(op.__file__)} have no TGT flag")
            const = {k: v for k, v in const.items() if k in names}
            sig = {a: ("constexpr" if a in const else "i32" if a in ints else "fp32" if a == "eps" else "*fp32")
                   for a in names}
            src = ASTSource(fn=fn, signature=sig, constexprs={(names.index(k),): v for k, v in const.items()})
            kern = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4))
            ptx = os.path.join(args.out, f"{name.replace('+', '_')}.ptx")
            with open(ptx, "w") as f:
                f.write(kern.asm["ptx"])
            info = subprocess.run([ptxas, "-arch=sm_90a", "-v", ptx, "-o", os.devnull], capture_output=True,
                                  text=True, timeout=600).stderr
            os.remove(ptx)
            regs = re.findall(r"Used (\d+) registers", info)
            spill = re.findall(r"(\d+) bytes spill stores", info)
            res.put("sm90", name, f"compiles; {regs[0] if regs else '?'} registers, {spill[0] if spill else '?'} "
                                  f"bytes spill stores, {kern.metadata.shared} bytes shared memory "
                                  f"({time.time() - t:.0f} s)")
        except Exception as err:  # noqa: BLE001
            res.put("sm90", name, f"error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


# ----------------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="tiny sizes on CPU (exercises the harness)")
    ap.add_argument("--sm90", action="store_true", help="only compile the Triton kernels for sm_90 (no GPU needed)")
    ap.add_argument("--budget", type=float, default=460, help="global deadline in seconds")
    ap.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "gpu"))
    ap.add_argument("--parts", nargs="*", default=["env", "tests", "scan", "fla", "models"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--tests-limit", type=float, default=150)
    ap.add_argument("--model-limit", type=float, default=45)
    ap.add_argument("--model-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="transformer", help=argparse.SUPPRESS)
    ap.add_argument("--length", type=int, default=4096, help=argparse.SUPPRESS)
    ap.add_argument("--size", default=None)
    ap.add_argument("--vocab", type=int, default=None)
    args = ap.parse_args(argv)
    args.size = args.size or ("tiny" if args.cpu else "170m")
    args.vocab = args.vocab or (256 if args.cpu else 32000)
    if args.cpu:
        os.environ.setdefault("TRITON_INTERPRET", "1")
        args.scan_lengths, args.model_lengths = [32, 64], [128, 256]
        args.heads, args.head_dim, args.repeats = 1, 16, 1
    else:
        args.scan_lengths, args.model_lengths = [4096, 16384], [4096, 16384]
    if args.model_worker:
        print(json.dumps(model_worker(args)))
        return 0
    mode = "sm90" if args.sm90 else ("cpu" if args.cpu else "gpu")
    if mode == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device; run with --cpu (the harness at tiny sizes) or --sm90 (compile only)",
                  file=sys.stderr)
            return 2
    res = Results(args.out, mode)
    deadline = Deadline(args.budget)
    parts = ["env", "sm90"] if args.sm90 else args.parts
    funcs = dict(env=lambda: part_env(args, res), tests=lambda: part_tests(args, res, deadline),
                 scan=lambda: part_scan(args, res, deadline), fla=lambda: part_fla(args, res, deadline),
                 models=lambda: part_models(args, res, deadline), sm90=lambda: part_sm90(args, res, deadline))
    for part in parts:
        t = time.time()
        print(f"[gpu_check] {part} ...", flush=True)
        try:
            funcs[part]()
        except Exception as err:  # noqa: BLE001 - the next part still runs
            res.put(part, "error", f"{type(err).__name__}: {err}")
            traceback.print_exc()
        res.put(part, "part_seconds", round(time.time() - t, 1))
    res.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    res.write()
    print(open(res.md_path).read())
    print(f"[gpu_check] wrote {res.json_path} and {res.md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
