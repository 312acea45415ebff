"""The values of our cells, read from a run's records: the record of a suite (:func:`results_of`), S-NIAH exact match
by Table 2 column (:func:`niah_cells`), perplexity at the training length (:func:`corpus_ppl`,
:func:`trained_length`)."""

from __future__ import annotations

from collections.abc import Callable

from titans.eval.long_context import length_label
from titans.eval.report.columns import NIAH_COLUMNS
from titans.eval.report.inputs import Run

CORPUS_PPL = "corpus ppl"  # extra column: validation ppl of the bundled corpus at the training length (CPU scale)


def niah_cells(results: dict) -> dict[str, float]:
    """S-NIAH exact match (%) by Table 2 column ("PK 2K"; "PK 256" for lengths that are not whole K)."""
    cells = {}
    for key, value in (results.get("exact_match") or {}).items():
        task, _, length = key.partition("/")
        if task in NIAH_COLUMNS and length.isdigit() and value is not None:
            cells[f"{NIAH_COLUMNS[task]} {length_label(int(length))}"] = 100 * value
    return cells


def corpus_ppl(results: dict, train_length: int | None) -> float | None:
    """Perplexity at the training length (or the longest evaluated length below it) from a perplexity record."""
    lengths = sorted(int(n) for n in results.get("by_length", {}))
    fitting = [n for n in lengths if train_length is None or n <= train_length]
    return results["by_length"][str(fitting[-1])] if fitting else None


def _is(kind: str) -> Callable[[dict], bool]:
    def check(record: dict) -> bool:
        results = record.get("results") or {}
        if kind == "table1":
            return "table1" in results
        if kind == "niah":
            return bool(niah_cells(results))
        if kind == "perplexity":
            return "by_length" in results
        return False

    return check


def results_of(run: Run, kind: str) -> dict | None:
    """The results of the run's record of ``kind`` ("table1", "niah", "perplexity"; the last such record when
    several suites' are), or None."""
    found = run.results(_is(kind))
    return found[-1] if found else None


def trained_length(run: Run) -> int | None:
    """The context length the run's model was trained at (``max_position_embeddings``), when a record has it."""
    for record in run.records.values():
        config = (record.get("model") or {}).get("config") or {}
        if config.get("max_position_embeddings"):
            return int(config["max_position_embeddings"])
    return None
