"""Run ``train.py`` as a subprocess and read back its ``metrics.json``: how the CPU sweeps of ``scripts/``
(demo_recall, ablate_small) run many small jobs side by side, one thread each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_train_job(overrides: list[str], output_dir: str | Path, threads: int = 1) -> dict:
    """``python train.py OVERRIDES hydra.run.dir=OUTPUT_DIR`` with ``threads`` CPU threads, offline.

    Returns ``{"seconds", "cpu_seconds" (user + system of the job), "command", "output_dir"}`` plus the run's metrics.json entries, or ``"error"`` (the
    end of its output) when it failed.
    """
    output_dir = Path(output_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    started = time.time()
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "job.log", "w+") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={output_dir}"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # the job's own CPU time, also when jobs run side by side
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    result = {"seconds": round(time.time() - started, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "output_dir": str(output_dir), "command": " ".join(["python train.py", *overrides])}
    metrics_file = output_dir / "metrics.json"
    if proc.returncode != 0 or not metrics_file.is_file():
        result["error"] = output[-2000:]
        return result
    result.update(json.loads(metrics_file.read_text()))
    return result
