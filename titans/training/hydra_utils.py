"""Hydra helpers: custom resolvers and resolution of ``ckpt_path=last``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf

# One id per process: two runs started in the same second still get different output directories.
_RUN_ID = f"{os.getpid():x}{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """Register ``${run_id:}`` (unique per process: the run directories' suffix)."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: _RUN_ID)


#: the files a run leaves to resume from: the periodic/last save and the one written when it was interrupted
RESUMABLE = ("last.ckpt", "on_exception.ckpt")


def resolve_ckpt_path(ckpt_path: str | None, log_dir: str | Path, task_name: str, output_dir: str | Path) -> str | None:
    """``last`` means the newest resumable state of an earlier run of the same task: the most recently written of
    its ``checkpoints/last.ckpt`` and ``checkpoints/on_exception.ckpt`` (Ctrl-C, SIGTERM or a crash after the
    last periodic save writes the latter, so nothing since that save is lost).

    Any other value must be an existing file. Returns ``None`` for a fresh run.
    """
    if ckpt_path is None:
        return None
    if str(ckpt_path) != "last":
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist: give a .ckpt file or ckpt_path=last")
        return str(ckpt_path)
    task_dir = Path(log_dir) / task_name
    output_dir = Path(output_dir).resolve()
    candidates = [
        p for name in RESUMABLE for p in task_dir.glob(f"**/checkpoints/{name}")
        if output_dir not in p.resolve().parents
    ]
    if not candidates:
        raise FileNotFoundError(
            f"ckpt_path=last found no checkpoints/last.ckpt or on_exception.ckpt under {task_dir}: train first, "
            f"or give ckpt_path=PATH"
        )
    return str(max(candidates, key=lambda p: p.stat().st_mtime))
