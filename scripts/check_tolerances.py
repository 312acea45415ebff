"""Every float32/bf16 comparison of the tests over many seeds: the worst ratio error / bound of each (not run in CI).

The comparisons are the calls of tests/numerics.py's ``assert_within_reference_error`` (bound = factor x max(the
float32 reference's own error, a floor of a few eps x the scale)); the tests that make them take their data's seed
from the ``tol_seed`` fixture. This runs those tests with ``TITANS_TOLERANCE_SEEDS=N`` (each test N times, seed
offsets 0..N-1, and no other test) and ``TITANS_TOLERANCE_LOG`` set, then reports per test case the worst ratio over
the seeds and the margin 1 / ratio, which must be at least 3.

    python scripts/check_tolerances.py                      # 50 seeds, every test file that uses tests/numerics.py
    python scripts/check_tolerances.py --seeds 5 tests/memory/test_memory_triton.py

Writes experiments/results/tolerances/tolerances.{json,md} (--out; the JSON holds the worst seed of each
comparison) and prints their paths.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 3.0


def test_files() -> list[str]:
    """The test files that call tests/numerics.py."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if "from numerics import" in p.read_text())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores available, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def case_of(test: str) -> str:
    """The test id without the seed parameter: tests/x.py::t[1-seed3] -> tests/x.py::t[1]."""
    case = re.sub(r"-?seed\d+", "", test)
    return case.replace("[]", "").replace("[-", "[")


def summarise(rows: list[dict]) -> list[dict]:
    cases: dict[str, dict] = {}
    for row in rows:
        case = case_of(row["test"])
        seed = re.search(r"seed(\d+)", row["test"])
        c = cases.setdefault(case, dict(case=case, comparisons=set(), seeds=set(), worst_ratio=0.0, worst=None))
        c["comparisons"].add(row["what"])
        c["seeds"].add(int(seed.group(1)) if seed else 0)
        if row["ratio"] >= c["worst_ratio"]:
            c["worst_ratio"], c["worst"] = row["ratio"], dict(row, seed=int(seed.group(1)) if seed else 0)
    out = []
    for c in cases.values():
        ratio = c["worst_ratio"]
        out.append(dict(case=c["case"], n_comparisons=len(c["comparisons"]), n_seeds=len(c["seeds"]),
                        worst_ratio=ratio, margin=(1 / ratio) if ratio > 0 else float("inf"),
                        ok=ratio <= 1 / MARGIN, worst=c["worst"]))
    return sorted(out, key=lambda c: -c["worst_ratio"])


def markdown(report: dict) -> str:
    lines = [f"# Tolerance check: {report['seeds']} seeds per comparison", "",
             f"- date: {report['date']}", f"- commit: {report['commit']}", f"- machine: {report['machine']}",
             f"- torch threads: {report['threads']}",
             f"- command: `{report['command']}`", f"- pytest: exit status {report['pytest_status']}, "
             f"{report['n_cases']} test cases, {report['n_rows']} comparisons, {report['wall_s']:.0f} s",
             "", "ratio = error / bound (bound = factor x max(reference error, ulps x eps x scale), "
             f"tests/numerics.py); margin = 1 / worst ratio, required >= {MARGIN:g}. Comparisons on fixed data "
             "(a trained run, a data file; the `numerics` mark) run once: their seeds column is 1.", "",
             "| test case | comparisons | seeds | worst ratio | margin | worst comparison (seed) | |",
             "|---|---:|---:|---:|---:|---|---|"]
    for c in report["cases"]:
        w = c["worst"] or {}
        lines.append(f"| `{c['case']}` | {c['n_comparisons']} | {c['n_seeds']} | {c['worst_ratio']:.3f} | "
                     f"{c['margin']:.1f} | {w.get('what', '')} ({w.get('seed', '')}) | {'ok' if c['ok'] else 'LOW'} |")
    low = [c for c in report["cases"] if not c["ok"]]
    lines += ["", f"{len(low)} test case(s) with a margin below {MARGIN:g}." if low
              else f"Every comparison holds with a margin of at least {MARGIN:g}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="test files (default: every one that uses tests/numerics.py)")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "tolerances"))
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--all-rows", action="store_true", help="keep every comparison of every seed in the JSON "
                    "(default: the worst seed of each comparison)")
    args = ap.parse_args(argv)
    files = args.files or test_files()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "tolerances.jsonl"
        env = dict(os.environ, TITANS_TOLERANCE_SEEDS=str(args.seeds), TITANS_TOLERANCE_LOG=str(log),
                   HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", TITANS_COMPILE="false")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *files]
        if args.k:
            cmd += ["-k", args.k]
        print("running:", " ".join(cmd), file=sys.stderr, flush=True)
        start = time.time()
        status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        wall = time.time() - start
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    report = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), machine=machine(),
                  commit=(commit.stdout.strip() or "?") + (" (with uncommitted changes)" if dirty else ""),
                  threads=os.environ.get("OMP_NUM_THREADS", f"torch default ({torch.get_num_threads()})"),
                  command="python scripts/check_tolerances.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  seeds=args.seeds, files=files, pytest_status=status, wall_s=wall, n_rows=len(rows))
    report["cases"] = summarise(rows)
    report["n_cases"] = len(report["cases"])
    worst: dict[tuple[str, str], dict] = {}  # the worst seed of each comparison (all rows: --all-rows)
    for row in rows:
        key = (case_of(row["test"]), row["what"])
        if key not in worst or row["ratio"] > worst[key]["ratio"]:
            worst[key] = row
    kept = rows if args.all_rows else sorted(worst.values(), key=lambda r: (case_of(r["test"]), r["what"]))
    (out / "tolerances.json").write_text(json.dumps(dict(report, rows=kept), indent=1) + "\n")
    (out / "tolerances.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'tolerances.json'}\nwrote {out / 'tolerances.md'}")
    ok = status == 0 and rows and all(c["ok"] for c in report["cases"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
