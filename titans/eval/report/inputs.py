"""The report's inputs: every JSON document under the result paths (:func:`load_documents`), and eval.py's records
among them grouped by checkpoint into :class:`Run` objects (:func:`build_runs`); :func:`read_inputs` does both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from titans.eval.report.identity import Identity, identify, size_of


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


@dataclass
class Run:
    """One checkpoint and the results of every suite evaluated on it (the newest record of each suite)."""

    checkpoint: str
    identity: Identity
    size: str | None
    n_parameters: int | None = None
    records: dict[str, dict] = field(default_factory=dict)  # suite name -> record

    @property
    def train_tokens(self) -> float | None:
        known = [(r.get("checkpoint") or {}).get("train_tokens") for r in self.records.values()]
        return max((t for t in known if t), default=None)

    @property
    def scale(self) -> str:
        """"tiny, 1.9M params, 614.4K tokens": the size (by shape), parameters, training tokens when known."""
        parts = [self.size or "custom shape"]
        if self.n_parameters:
            parts.append(f"{_count(self.n_parameters)} params")
        if self.train_tokens:
            parts.append(f"{_count(self.train_tokens)} tokens")
        return ", ".join(parts)

    @property
    def dates(self) -> list[str]:
        return sorted({str(r.get("created_utc", ""))[:10] for r in self.records.values()})

    @property
    def commits(self) -> list[str]:
        return sorted({str(r.get("git_commit") or "?")[:7] for r in self.records.values()})

    def results(self, suite_kind: Callable[[dict], bool]) -> list[dict]:
        return [r["results"] for r in self.records.values() if suite_kind(r)]


@dataclass
class ReportInputs:
    documents: list[dict]  # every JSON document read (``_path`` added)
    runs: list[Run]


def is_eval_record(document: dict) -> bool:
    from titans.eval.results import REQUIRED_KEYS

    return all(key in document for key in REQUIRED_KEYS)


def load_documents(paths: Iterable[str | Path], skip_dirs: Iterable[str | Path] = ()) -> list[dict]:
    """Every JSON object in ``paths`` (files, or directories searched recursively, ``skip_dirs`` excepted)."""
    skip = [Path(p).resolve() for p in skip_dirs]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json")
                            if not any(s == p.resolve() or s in p.resolve().parents for s in skip))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"result file or directory not found: {path}")
    documents = []
    for file in dict.fromkeys(files):
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(document, dict):
            documents.append(dict(document, _path=str(file)))
    return documents


def build_runs(documents: list[dict]) -> list[Run]:
    runs: dict[str, Run] = {}
    for document in sorted((d for d in documents if is_eval_record(d)), key=lambda d: str(d.get("created_utc"))):
        model = document.get("model") or {}
        config = model.get("config") or {}
        checkpoint = (document.get("checkpoint") or {}).get("path") or document["_path"]
        if checkpoint not in runs:
            runs[checkpoint] = Run(checkpoint, identify(model), size_of(config), model.get("n_parameters"))
        runs[checkpoint].records[document["suite"]] = document  # the newest record of a suite wins
    return list(runs.values())


def read_inputs(paths: Iterable[str | Path], skip_dirs: Iterable[str | Path] = ()) -> ReportInputs:
    documents = load_documents(paths, skip_dirs)
    return ReportInputs(documents, build_runs(documents))
