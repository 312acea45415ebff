"""Hydra helpers: what the configs use beyond their YAML files, and the resolution of ``ckpt_path=last``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from titans.memory import MemoryConfig
from titans.memory.config import PRESETS

# One id per process: two runs started in the same second still get different output directories.
_RUN_ID = f"{os.getpid():x}{secrets.token_hex(2)}"

#: two training-run policies that differ from MemoryConfig's library defaults: the memory has the model's heads
#: (TitansConfig fills in None), and the chunk step is compiled unless TITANS_COMPILE=false
TRAINING_MEMORY = {"num_heads": None, "compile": "${oc.decode:${oc.env:TITANS_COMPILE,true}}"}


def memory_node(preset: str) -> dict:
    """``model.net.memory`` of a training config: every MemoryConfig field, with the values of ``preset`` and the
    training policies above; instantiated by Hydra into a MemoryConfig."""
    return {"_target_": "titans.memory.MemoryConfig", **MemoryConfig.preset(preset).to_dict(), **TRAINING_MEMORY}


def register_hydra() -> None:
    """Register ``${run_id:}`` (unique per process: the run directories' suffix) and the memory presets as the
    config group ``model/memory`` (``memory@net.memory: titans`` in configs/model/*.yaml), so the memory's
    defaults are stated once, in titans.memory.MemoryConfig."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: _RUN_ID)
    store = ConfigStore.instance()
    for preset in PRESETS:
        store.store(group="model/memory", name=preset, node=memory_node(preset))


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
