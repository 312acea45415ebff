"""Background text for long-context tasks (the "haystack").

RULER fills its haystacks with Paul Graham essays and BABILong with PG-19 books; neither ships
offline, so the project uses its bundled public-domain corpus (data/shakespeare/train.txt) or any
text file / string it is given.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HAYSTACK_FILES = ("data/shakespeare/train.txt", "data/shakespeare/valid.txt", "data/shakespeare/val.txt")

# RULER's "repeat" haystack (S-NIAH-1, from the passkey retrieval task of Mohtashami & Jaggi 2023).
NOISE_SENTENCE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def load_haystack_text(path: str | Path | None = None) -> str:
    """Text of ``path``, or of the bundled corpus when no path is given."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Haystack text file not found: {path}")
        return path.read_text(encoding="utf-8", errors="replace")
    for relative in DEFAULT_HAYSTACK_FILES:
        candidate = REPO_ROOT / relative
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8", errors="replace")
    raise FileNotFoundError(
        f"No haystack text: none of {', '.join(DEFAULT_HAYSTACK_FILES)} exists under {REPO_ROOT}. "
        f"Pass haystack_path=<any plain-text file> (or haystack_text=... from Python)."
    )


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` with whitespace collapsed (a simple splitter on . ! ?)."""
    text = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(text) if s]


class Haystack:
    """An endless, seeded stream of sentences taken from a text, starting at a random sentence."""

    def __init__(self, text: str):
        self.sentences = split_sentences(text)
        if len(self.sentences) < 2:
            raise ValueError("Haystack text must contain at least two sentences.")

    def take(self, n: int, start: int) -> list[str]:
        """``n`` consecutive sentences from index ``start``, wrapping around the text."""
        count = len(self.sentences)
        return [self.sentences[(start + i) % count] for i in range(n)]
