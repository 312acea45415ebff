"""Background text for long-context tasks (the "haystack"), and the two measures every generated prompt needs.

RULER fills its haystacks with Paul Graham essays and BABILong with PG-19 books; neither ships offline, so the
project uses its bundled public-domain corpus (data/shakespeare/train.txt) or any text file it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HAYSTACK_FILE = "data/shakespeare/train.txt"

# RULER's "repeat" haystack (S-NIAH-1, from the passkey retrieval task of Mohtashami & Jaggi 2023).
NOISE_SENTENCE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def load_haystack_text(path: str | Path | None = None) -> str:
    """Text of ``path``, or of the bundled corpus when no path is given."""
    if path is None:
        path = REPO_ROOT / DEFAULT_HAYSTACK_FILE
        if not path.is_file():
            raise FileNotFoundError(f"No haystack text: {DEFAULT_HAYSTACK_FILE} does not exist under {REPO_ROOT}. "
                                    f"Pass haystack_path=<any plain-text file> (or restore data/ with git checkout).")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Haystack text file not found: {path}")
    return path.read_text(encoding="utf-8", errors="replace")


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


def n_tokens(tokenizer, text: str) -> int:
    """Length of ``text`` in tokens of ``tokenizer`` (no special tokens), the unit every context length is given in."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def most_that_fit(length_with: Callable[[int], int], budget: int) -> int:
    """The largest ``n >= 0`` with ``length_with(n) <= budget``, for a non-decreasing ``length_with`` with
    ``length_with(0) <= budget``: how many background sentences fit in a prompt of ``budget`` tokens. Doubling, then
    bisection, so about 2 log2(n) evaluations."""
    low, high = 0, 1  # the answer lies in [low, high)
    while length_with(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if length_with(mid) <= budget else (low, mid)
    return low
