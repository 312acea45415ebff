"""Result files: one JSON per evaluation, with everything needed to trace it back.

Keys: ``suite``, ``checkpoint`` (path, kind), ``titans_version``, ``git_commit`` (+ ``git_dirty``),
``created_utc``, ``config`` (the resolved Hydra config), ``model`` (class, parameter count, config),
``results`` (suite specific), ``tables`` (markdown), ``figures`` (paths).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED_KEYS = ("suite", "checkpoint", "titans_version", "git_commit", "created_utc", "config", "model", "results")


def package_version() -> str:
    try:
        return metadata.version("titans")
    except metadata.PackageNotFoundError:
        import titans

        return getattr(titans, "__version__", "unknown")


def git_commit(repo: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(HEAD commit, working tree has changes), or (None, None) outside git / before the first commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def describe_checkpoint(path: str | Path) -> dict:
    """Path and kind; for a training checkpoint also how far it trained (``global_step``, ``train_tokens``)."""
    path = Path(path).resolve()
    described = {"path": str(path), "kind": "huggingface" if path.is_dir() else "lightning"}
    if path.is_file():
        described.update(training_progress(path))
    return described


def training_progress(path: Path) -> dict:
    """``global_step`` and ``train_tokens`` (steps x tokens per step) of a train.py checkpoint; {} if unknown."""
    from titans.models.checkpoint_io import safe_torch_load

    try:
        ckpt = safe_torch_load(path, mmap=True)
    except Exception:  # noqa: BLE001 - the record is written whatever the file holds
        return {}
    step = ckpt.get("global_step") if isinstance(ckpt, dict) else None
    per_step = ((ckpt.get("hyper_parameters") or {}).get("tokens_per_step") if isinstance(ckpt, dict) else None)
    progress = {}
    if isinstance(step, int):
        progress["global_step"] = step
        if isinstance(per_step, int) and per_step > 0:
            progress["train_tokens"] = step * per_step
    return progress


def describe_model(model) -> dict:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    return {"class": type(model).__name__, "n_parameters": sum(p.numel() for p in model.parameters()),
            "config": to_dict() if callable(to_dict) else None}


def _json_safe(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return str(value)


def build_record(suite: str, checkpoint: str | Path, config: dict, model, results: dict, tables: dict | None = None,
                 figures: list[str] | None = None) -> dict:
    commit, dirty = git_commit()
    return {"suite": suite, "checkpoint": describe_checkpoint(checkpoint), "titans_version": package_version(),
            "git_commit": commit, "git_dirty": dirty,
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": config, "model": describe_model(model), "results": results, "tables": tables or {},
            "figures": figures or []}


def write_record(record: dict, directory: str | Path, name: str | None = None) -> Path:
    """Write ``record`` as JSON (NaN -> null) under ``directory``; return the file path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if name is None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        checkpoint = Path(record["checkpoint"]["path"])
        label = checkpoint.parent.parent.name if checkpoint.name == "last.ckpt" else checkpoint.stem
        name = f"{record['suite']}_{label}_{stamp}"
    path = directory / (name if name.endswith(".json") else f"{name}.json")
    path.write_text(json.dumps(_json_safe(record), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def read_record(path: str | Path) -> dict:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{path} is not a titans result file (missing keys: {', '.join(missing)})")
    return record
