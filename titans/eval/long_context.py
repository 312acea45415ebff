"""Run S-NIAH and BABILong samples through a model and summarise them (tables, accuracies)."""

from __future__ import annotations

from collections import defaultdict

from titans.eval.generation import generate_answers
from titans.eval.metrics import BABILONG_TASK_LABELS, babilong_correct, niah_contains, niah_exact_match
from titans.tasks.babilong import BabilongSample
from titans.tasks.niah import NIAHSample


def evaluate_niah(model, tokenizer, samples: list[NIAHSample], batch_size: int = 1,
                  extra_tokens: int = 4, progress_desc: str | None = "S-NIAH") -> list[dict]:
    """Greedy answers to S-NIAH samples; one row per sample with ``exact_match`` and ``contains``."""
    budgets = [len(tokenizer(" " + s.answer, add_special_tokens=False)["input_ids"]) + extra_tokens for s in samples]
    predictions = generate_answers(model, tokenizer, [s.prompt for s in samples], budgets, batch_size,
                                   progress_desc=progress_desc)
    rows = []
    for sample, prediction in zip(samples, predictions):
        rows.append({"task": sample.task, "context_length": sample.context_length, "depth": sample.depth,
                     "index": sample.index, "n_tokens": sample.n_tokens, "answer": sample.answer,
                     "prediction": prediction, "exact_match": float(niah_exact_match(prediction, sample.answer)),
                     "contains": float(niah_contains(prediction, sample.answer))})
    return rows


def evaluate_babilong(model, tokenizer, samples: list[BabilongSample], batch_size: int = 1,
                      max_new_tokens: int = 8, progress_desc: str | None = "BABILong") -> list[dict]:
    """Greedy answers to BABILong samples, scored by the benchmark's answer-word rule."""
    predictions = generate_answers(model, tokenizer, [s.prompt for s in samples], max_new_tokens, batch_size,
                                   progress_desc=progress_desc)
    rows = []
    for sample, prediction in zip(samples, predictions):
        correct = babilong_correct(sample.answer, prediction, sample.question, BABILONG_TASK_LABELS[sample.task])
        rows.append({"task": sample.task, "context_length": sample.context_length, "index": sample.index,
                     "n_tokens": sample.n_tokens, "question": sample.question, "answer": sample.answer,
                     "prediction": prediction, "acc": float(correct)})
    return rows


def mean_by(rows: list[dict], keys: tuple[str, ...], metric: str) -> dict[tuple, float]:
    """Mean of ``metric`` over rows grouped by the values of ``keys``."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row[metric])
    return {key: sum(values) / len(values) for key, values in sorted(groups.items())}


def length_label(tokens: int) -> str:
    if tokens == 0:
        return "0K"
    if tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    if tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    return str(tokens)


def markdown_table(rows: list[dict], metric: str, row_key: str = "task", column_key: str = "context_length",
                   scale: float = 100.0) -> str:
    """Markdown table of mean ``metric`` (x scale) with one row per ``row_key`` and one column per length."""
    cells = mean_by(rows, (row_key, column_key), metric)
    row_names = sorted({k[0] for k in cells})
    columns = sorted({k[1] for k in cells})
    header = f"| {row_key} | " + " | ".join(length_label(c) if column_key == "context_length" else str(c)
                                             for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for name in row_names:
        values = [f"{cells[(name, c)] * scale:.1f}" if (name, c) in cells else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(lines)
