"""Where the bundled data lives, and how user-given relative paths are resolved."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The repository's data/ directory (override with the TITANS_DATA_DIR environment variable)."""
    return Path(os.environ.get("TITANS_DATA_DIR", REPO_ROOT / "data"))


def cache_dir() -> Path:
    """Token-id caches (git-ignored)."""
    return data_dir() / "cache"


def resolve_path(path: str | os.PathLike) -> Path:
    """A user path: absolute, relative to the working directory, or relative to the repository root
    (Hydra may change the working directory, so repository-relative paths keep working)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    for base in (REPO_ROOT, data_dir().parent):
        candidate = base / path
        if candidate.exists():
            return candidate
    return path
