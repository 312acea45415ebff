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

    Returns ``{"seconds", "command", "output_dir"}`` plus the run's metrics.json entries, or ``"error"`` (the
    end of its output) when it failed.
    """
    output_dir = Path(output_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    started = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={output_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    result = {"seconds": round(time.time() - started, 1), "output_dir": str(output_dir),
              "command": " ".join(["python train.py", *overrides])}
    metrics_file = output_dir / "metrics.json"
    if proc.returncode != 0 or not metrics_file.is_file():
        result["error"] = (proc.stderr or proc.stdout)[-2000:]
        return result
    result.update(json.loads(metrics_file.read_text()))
    return result
