"""Hydra helpers: the resolvers of the run directories' names (configs/hydra/default.yaml), and the resolution of
``ckpt_path=last``."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# One id per process: two runs started in the same second still get different output directories.
_RUN_ID = f"{os.getpid():x}{secrets.token_hex(2)}"
# ... and one start time (the run directory's name is resolved more than once)
_RUN_STARTED = time.strftime("%Y-%m-%d_%H-%M-%S")


def run_dir_name(run_name=None) -> str:
    """The name of a run's directory under ``logs/<task>/runs/``: ``run_name`` when given (a run started again
    with the same name continues in its directory), else ``<start time>_<process id>`` (a new one per run)."""
    if run_name is None or str(run_name) in ("", "None", "null"):
        return f"{_RUN_STARTED}_{_RUN_ID}"
    return str(run_name)


def register_resolvers() -> None:
    """Register the resolvers of configs/hydra/default.yaml's output directories: ``${run_id:}`` (unique per process:
    the multirun directories' suffix) and ``${run_dir_name:NAME}`` (see :func:`run_dir_name`). train.py and eval.py
    call it before Hydra resolves ``hydra.run.dir``; composing a config (``hydra.compose``) does not need it."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: _RUN_ID)
    if not OmegaConf.has_resolver("run_dir_name"):
        OmegaConf.register_new_resolver("run_dir_name", run_dir_name)


#: the files a run leaves to resume from: the periodic/last save and the one written when it was interrupted
RESUMABLE = ("last.ckpt", "on_exception.ckpt")


def newest_resumable(checkpoints_dir: str | Path) -> Path | None:
    """The most recently written of ``checkpoints_dir``'s :data:`RESUMABLE` files (None when it has none)."""
    found = [p for p in (Path(checkpoints_dir) / name for name in RESUMABLE) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resolve_ckpt_path(ckpt_path: str | None, log_dir: str | Path, task_name: str, output_dir: str | Path,
                      run_config: Mapping | None = None, run_name: str | None = None) -> str | None:
    """The checkpoint a run resumes from: ``None`` for a fresh run, an existing file as given, or for ``last``
    the newest resumable state of *this* run (the most recently written of its ``checkpoints/last.ckpt`` and
    ``checkpoints/on_exception.ckpt``: Ctrl-C, SIGTERM or a crash after the last periodic save writes the latter):

    1. this run's own directory (``output_dir``), when it holds one: a run started again in its directory, i.e.
       with the same ``run_name`` (``logs/<task>/runs/<run_name>``) or the same ``hydra.run.dir``;
    2. else, with ``run_name`` set: an error (that run has not saved anything yet);
    3. else, among the earlier runs of ``task_name`` (``log_dir/<task_name>/**``), only those whose checkpoint
       records the same resolved config as ``run_config`` (the keys a resume may change aside, see
       titans.training.checkpoint.RUNTIME_CONFIG_KEYS): the newest. Another experiment's state is never taken;
       without a run config (``run_config=None``, library use) every run of the task counts.

    Logs which file it took; raises FileNotFoundError (one line, what to do) when there is none.
    """
    if ckpt_path is None:
        return None
    if str(ckpt_path) != "last":
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist: give a .ckpt file or ckpt_path=last")
        return str(ckpt_path)
    output_dir = Path(output_dir).resolve()
    own = newest_resumable(output_dir / "checkpoints")
    if own is not None:
        log.info("ckpt_path=last: resuming this run's %s", own)
        return str(own)
    if run_name not in (None, "", "None", "null"):
        raise FileNotFoundError(
            f"ckpt_path=last: run_name={run_name} has no checkpoints/last.ckpt or on_exception.ckpt in {output_dir} "
            f"yet: start it without ckpt_path=last, or give ckpt_path=PATH")
    task_dir = Path(log_dir) / task_name
    candidates = [p for name in RESUMABLE for p in task_dir.glob(f"**/checkpoints/{name}")
                  if output_dir not in p.resolve().parents]
    if not candidates:
        raise FileNotFoundError(
            f"ckpt_path=last found no earlier run of task_name={task_name} (no checkpoints/last.ckpt or "
            f"on_exception.ckpt under {task_dir}): train first, or give ckpt_path=PATH")
    candidates.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    if run_config is None:
        chosen = candidates[0]
    else:
        chosen, nearest = _same_run(candidates, run_config)
        if chosen is None:
            raise FileNotFoundError(
                f"ckpt_path=last found {len(candidates)} checkpoint(s) of task_name={task_name} under {task_dir}, "
                f"none of a run with this config ({nearest}): resume with that run's own overrides, or give "
                f"ckpt_path=PATH (with allow_config_change=true to change its config)")
    log.info("ckpt_path=last: resuming %s (the newest checkpoint of an earlier run of task %s with this config)",
             chosen, task_name)
    return str(chosen)


def _same_run(candidates: list[Path], run_config: Mapping) -> tuple[Path | None, str]:
    """The first of ``candidates`` (newest first) recording the same run config; else (None, what the newest that
    records one differs in, or why none could be compared)."""
    from titans.errors import CheckpointError
    from titans.models.checkpoint_io import RUN_CONFIG, safe_torch_load
    from titans.training.checkpoint import run_config_differences

    nearest, unrecorded = "", 0
    for path in candidates:
        try:
            recorded = safe_torch_load(path, mmap=True).get(RUN_CONFIG)
        except (CheckpointError, AttributeError):
            continue
        if not isinstance(recorded, Mapping):
            unrecorded += 1
            continue
        differences = run_config_differences(recorded, run_config)
        if not differences:
            return path, ""
        nearest = nearest or f"the newest, {path}, differs in {differences}"
    if unrecorded:
        old = f"{unrecorded} written before train.py recorded its config"
        nearest = f"{nearest}; {old}" if nearest else old
    return None, nearest or "none could be read"
