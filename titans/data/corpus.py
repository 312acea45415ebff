"""The bundled text corpus format: UTF-8 text files whose documents are separated by a line that holds
only DOC_SEPARATOR (written by scripts/build_corpus.py)."""

from __future__ import annotations

from pathlib import Path

from titans.errors import DataUnavailableError

DOC_SEPARATOR = "<|endoftext|>"


def read_documents(path: str | Path) -> list[str]:
    """The documents of one corpus file, in order (empty documents dropped)."""
    path = Path(path)
    if not path.is_file():
        raise DataUnavailableError(
            f"corpus file {path} is missing: restore it (git checkout data/, or python scripts/build_corpus.py "
            f"for data/shakespeare/) or point data.data_dir at a directory holding train.txt and validation.txt"
        )
    text = path.read_text(encoding="utf-8")
    docs = [doc.strip("\n") for doc in text.split(f"\n{DOC_SEPARATOR}\n")]
    return [doc for doc in docs if doc]
