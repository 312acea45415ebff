"""The training evidence for the memory's conditioning (docs/design.md, "Conditioning of the memory"): the embedded
default run (`python train.py`, tiny MAC, 300 steps of 8 x 256 tokens on the bundled corpus) over seeds, CPU thread
counts and compiled / eager memory kernels, beside Transformer++ trained with the same recipe.

Each run is `python train.py seed=S task_name=stability run_name=...` in a subprocess with OMP_NUM_THREADS and
TITANS_COMPILE set; its metrics.json gives the final validation perplexity and ``train/grad_norm_max_ratio`` (the
largest pre-clip gradient norm over its running median, titans/training/grad_monitor.py). Two runs of one thread
go side by side on a 2-core machine; a run's directory is removed first (run_name would resume it). The table goes to experiments/results/stability/default_runs.{json,md}.

    python scripts/stability_runs.py                 # the whole grid (about 45 minutes on 2 cores)
    python scripts/stability_runs.py --only mac_s1337_compiled_t1 transformer_s1337_eager_t1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "stability"
SEEDS = (1337, 1, 2)


def grid() -> list[dict]:
    runs = []
    for seed in SEEDS:
        for compiled in (True, False):
            runs.append(dict(model="mac", seed=seed, compiled=compiled, threads=1))
    runs += [dict(model="mac", seed=1337, compiled=c, threads=2) for c in (True, False)]
    runs += [dict(model="transformer", seed=s, compiled=False, threads=1) for s in SEEDS]
    for r in runs:
        r["name"] = f"{r['model']}_s{r['seed']}_{'compiled' if r['compiled'] else 'eager'}_t{r['threads']}"
    return runs


def command(run: dict) -> list[str]:
    args = [f"seed={run['seed']}", "task_name=stability", f"run_name={run['name']}"]
    if run["model"] != "mac":
        args.insert(0, f"model={run['model']}")
    return ["python", "train.py", *args]


def execute(run: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(run["threads"]), TITANS_COMPILE=str(run["compiled"]).lower(),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = command(run)
    shutil.rmtree(ROOT / "logs" / "stability" / "runs" / run["name"], ignore_errors=True)  # else it would resume
    log = OUT / "logs" / f"{run['name']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    metrics_path = ROOT / "logs" / "stability" / "runs" / run["name"] / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if rc == 0 and metrics_path.is_file() else {}
    env_line = f"OMP_NUM_THREADS={run['threads']} TITANS_COMPILE={str(run['compiled']).lower()}"
    return {**run, "command": f"{env_line} {' '.join(cmd)}", "returncode": rc,
            "val_ppl": metrics.get("val/ppl"), "val_loss": metrics.get("val/loss"),
            "grad_norm_max_ratio": metrics.get("train/grad_norm_max_ratio"),
            "final_grad_norm": metrics.get("train/grad_norm"), "cpu_seconds": metrics.get("cpu_seconds")}


def write(rows: list[dict]) -> None:
    meta = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True).stdout.strip()}
    (OUT / "default_runs.json").write_text(json.dumps({**meta, "runs": rows}, indent=2) + "\n")
    lines = [f"# The default run over seeds, threads and kernels ({meta['date']}, commit {meta['commit']})", "",
             "Written by `python scripts/stability_runs.py`. Recipe: configs/train.yaml (tiny, 300 steps of 8 x 256 "
             "tokens of the bundled corpus). `max ratio` is the largest pre-clip gradient norm over its running "
             "median of 50 steps (a spike is > 10).", "",
             "| run | val ppl | max ratio | final grad norm | command |", "|---|---|---|---|---|"]
    for r in rows:
        ppl = f"{r['val_ppl']:.2f}" if r["val_ppl"] else f"failed (rc {r['returncode']})"
        ratio = f"{r['grad_norm_max_ratio']:.2f}" if r["grad_norm_max_ratio"] else "-"
        gn = f"{r['final_grad_norm']:.2f}" if r["final_grad_norm"] else "-"
        lines.append(f"| {r['name']} | {ppl} | {ratio} | {gn} | `{r['command']}` |")
    (OUT / "default_runs.md").write_text("\n".join(lines) + "\n")


DEFAULT = "mac_s1337_compiled_t1"  # what `python train.py` is on a fresh clone (configs/train.yaml, compiled kernels)


def record_default_run() -> Path:
    """experiments/results/default_run.json: the default run's validation perplexity at each validation, from its
    CSV log; the README quotes ``val_ppl`` and tests/repo/test_default_run.py checks a fresh run against it."""
    import csv

    rows = {r["name"]: r for r in json.loads((OUT / "default_runs.json").read_text())["runs"]}
    run = rows[DEFAULT]
    at_step = {}
    for path in sorted((ROOT / "logs" / "stability" / "runs" / DEFAULT).glob("csv/version_*/metrics.csv")):
        with path.open() as fh:
            at_step.update({str(int(r["step"]) + 1): round(float(r["val/ppl"]), 2) for r in csv.DictReader(fh)
                            if r.get("val/ppl")})
    record = {"command": "python train.py", "val_ppl": round(run["val_ppl"], 2), "val_ppl_at_step": at_step,
              "grad_norm_max_ratio": round(run["grad_norm_max_ratio"], 2),
              "date": json.loads((OUT / "default_runs.json").read_text())["date"],
              "measured_as": run["command"], "details": "experiments/results/stability/default_runs.md"}
    path = ROOT / "experiments" / "results" / "default_run.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="run names to run (default: the whole grid)")
    p.add_argument("--record-default", action="store_true",
                   help=f"only (re)write experiments/results/default_run.json from the logs of {DEFAULT}")
    args = p.parse_args()
    if args.record_default:
        print(f"wrote {record_default_run()}")
        return
    runs = [r for r in grid() if not args.only or r["name"] in args.only]
    done = {}
    if (OUT / "default_runs.json").is_file():
        done = {r["name"]: r for r in json.loads((OUT / "default_runs.json").read_text())["runs"]}
    single = [r for r in runs if r["threads"] == 1]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for row in pool.map(execute, single):
            done[row["name"]] = row
            write([done[n] for n in (g["name"] for g in grid()) if n in done])
            print(f"{row['name']}: val ppl {row['val_ppl']}, max ratio {row['grad_norm_max_ratio']}", flush=True)
    for run in (r for r in runs if r["threads"] > 1):
        row = execute(run)
        done[row["name"]] = row
        write([done[n] for n in (g["name"] for g in grid()) if n in done])
        print(f"{row['name']}: val ppl {row['val_ppl']}, max ratio {row['grad_norm_max_ratio']}", flush=True)
    if DEFAULT in done and done[DEFAULT]["val_ppl"]:
        print(f"wrote {record_default_run()}")


if __name__ == "__main__":
    main()
