"""Run a forecasting experiment at the four horizons and write its Table 3 result file.

    python scripts/run_forecasting.py ts_etth1_lmm ts_etth1_dlinear            # 96, 192, 336, 720 each
    python scripts/run_forecasting.py ts_etth2_lmm --horizons 96 --set trainer.max_epochs=2 --jobs 2

Each horizon is one ``python train.py experiment=NAME data.horizon=H`` (one CPU thread, a subprocess, ``--jobs``
of them at a time); the file ``experiments/results/timeseries/NAME.json`` holds, per horizon, the test MSE/MAE
of the checkpoint with the best validation MSE, that validation MSE, the epochs trained, wall and CPU seconds
(the job's process time, from its metrics.json), and the averages over the horizons, with the command, date and git commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans.eval.results import git_commit, package_version  # noqa: E402
from titans.progress import heartbeat, progress  # noqa: E402
from titans.training.jobs import run_train_job  # noqa: E402

HORIZONS = (96, 192, 336, 720)
METRICS = ("test/mse", "test/mae", "best/val/mse")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help="configs/experiment names, e.g. ts_etth1_lmm")
    parser.add_argument("--horizons", nargs="+", type=int, default=list(HORIZONS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra train.py overrides")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at a time (one CPU thread each)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "timeseries"))
    parser.add_argument("--name", default=None, help="result file name (default: the experiment name)")
    parser.add_argument("--log-dir", default=str(ROOT / "logs" / "forecasting"))
    return parser.parse_args(argv)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_horizon(experiment: str, horizon: int, overrides: list[str], log_dir: Path) -> dict:
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    args = [f"experiment={experiment}", f"data.horizon={horizon}", *overrides]
    result = run_train_job(args, log_dir / experiment / f"{stamp}_h{horizon}")
    result["horizon"] = horizon
    return result


def summarise(experiment: str, runs: list[dict], overrides: list[str], cpu_seconds: float | None) -> dict:
    per_horizon = {}
    for run in sorted(runs, key=lambda r: r["horizon"]):
        entry = {"command": run["command"], "seconds": run["seconds"], "output_dir": run["output_dir"]}
        if "error" in run:
            entry["error"] = run["error"]
        else:
            entry.update({k: run.get(k) for k in METRICS})
            entry["epochs"] = run.get("epochs")
            entry["global_step"] = run.get("global_step")
            entry["cpu_seconds"] = run.get("cpu_seconds")
        per_horizon[str(run["horizon"])] = entry
    done = [e for e in per_horizon.values() if "error" not in e]
    average = {k: sum(e[k] for e in done) / len(done) for k in METRICS} if done and len(done) == len(runs) else None
    commit, dirty = git_commit()
    return {
        "suite": "timeseries", "experiment": experiment, "overrides": overrides,
        "command": " ".join(["python scripts/run_forecasting.py", experiment,
                             "--horizons", *[str(r["horizon"]) for r in runs], *(["--set", *overrides] if overrides else [])]),
        "protocol": "lookback 96; MSE/MAE on z-normalised test targets (training statistics); best val/mse checkpoint",
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "titans_version": package_version(), "git_commit": commit, "git_dirty": dirty,
        "threads_per_job": 1, "total_cpu_seconds": cpu_seconds,
        "horizons": per_horizon, "average": average,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    out, log_dir = Path(args.out), Path(args.log_dir)
    for experiment in args.experiments:
        cpu_before = _cpu_seconds()
        with progress(desc=experiment, total=len(args.horizons), unit="horizon") as bar, heartbeat(bar), \
                ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            def one(h):
                run = run_horizon(experiment, h, args.set, log_dir)
                bar.update()
                return run

            runs = list(pool.map(one, args.horizons))
        cpu = _cpu_seconds() - cpu_before
        record = summarise(experiment, runs, args.set, round(cpu, 1))
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{args.name or experiment}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        avg = record["average"]
        print(f"{experiment}: " + ", ".join(
            f"{h}: {e.get('test/mse', float('nan')):.4f}/{e.get('test/mae', float('nan')):.4f}"
            if "error" not in e else f"{h}: FAILED" for h, e in record["horizons"].items())
            + (f"; avg test MSE {avg['test/mse']:.4f} MAE {avg['test/mae']:.4f} (best val MSE {avg['best/val/mse']:.4f})"
               if avg else ""), flush=True)
        print(f"Results written to {path}")
        for run in runs:
            print(f"Checkpoints written under {Path(run['output_dir']) / 'checkpoints'}")


if __name__ == "__main__":
    main()
