"""Run ``train.py`` in a subprocess, the way a user does, with small overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A few optimizer steps of the tiny model on short sequences: seconds on a CPU.
SMALL = [
    "size=tiny",
    "data.seq_len=64",
    "data.batch_size=2",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "callbacks.progress_bar.refresh_rate=0",
]


def run_train(args: list[str], log_dir: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline",
               WANDB_SILENT="true", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (-m) come before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    cmd = [sys.executable, str(ROOT / "train.py"), *flags, f"paths.log_dir={log_dir}", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def run_dirs(log_dir: Path, task: str = "train") -> list[Path]:
    return sorted(p for p in (log_dir / task / "runs").iterdir() if p.is_dir())


def compose_train_config(tmp_path: Path, overrides: list[str], config_dir: Path | None = None):
    """configs/train.yaml composed with ``overrides`` as train.py would, its output paths under ``tmp_path`` and
    the Hydra config registered (so ``${hydra:...}`` interpolations resolve). ``config_dir``: another copy of
    configs/ (default: the repository's)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from titans.training.hydra_utils import register_resolvers

    register_resolvers()  # as train.py does on import: the run directory's name is a resolver
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir or ROOT / "configs"), version_base="1.3"):
        cfg = compose("train.yaml", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def assert_one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """An expected error of train.py/eval.py: exit status 2, no traceback, exactly one ``error: ...`` line (the last
    line of stderr) holding every fragment. Returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
