"""Paper Table 1: language modeling and common-sense reasoning through lm-eval.

Columns (paper order) and the lm-eval task/metric behind each. Accuracies are reported in %,
perplexities as they are. ``Avg`` is the mean of the eight accuracy columns, which is how the
paper's Avg is computed (checked against the paper's rows in tests/eval/test_eval_tables.py).
"""

from __future__ import annotations

import math

# column -> (lm-eval task, metric key in lm-eval's results, is an accuracy)
TABLE1_COLUMNS = {
    "Wiki ppl": ("wikitext", "word_perplexity,none", False),
    "LMB ppl": ("lambada_openai", "perplexity,none", False),
    "LMB acc": ("lambada_openai", "acc,none", True),
    "PIQA acc": ("piqa", "acc,none", True),
    "Hella acc_n": ("hellaswag", "acc_norm,none", True),
    "Wino acc": ("winogrande", "acc,none", True),
    "ARC-e acc": ("arc_easy", "acc,none", True),
    "ARC-c acc_n": ("arc_challenge", "acc_norm,none", True),
    "SIQA acc": ("social_iqa", "acc,none", True),
    "BoolQ acc": ("boolq", "acc,none", True),
}
TABLE1_TASKS = list(dict.fromkeys(task for task, _, _ in TABLE1_COLUMNS.values()))
ACCURACY_COLUMNS = [name for name, (_, _, is_acc) in TABLE1_COLUMNS.items() if is_acc]
ALL_COLUMNS = list(TABLE1_COLUMNS) + ["Avg"]


def table1_average(row: dict[str, float]) -> float:
    """Mean of the eight accuracy columns (NaN when one is missing)."""
    values = [row.get(name) for name in ACCURACY_COLUMNS]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return float("nan")
    return sum(values) / len(values)


def table1_row(lm_eval_results: dict) -> dict[str, float]:
    """Table 1 row (accuracies in %) from ``simple_evaluate(...)["results"]``; missing cells are NaN."""
    row = {}
    for name, (task, metric, is_acc) in TABLE1_COLUMNS.items():
        value = lm_eval_results.get(task, {}).get(metric)
        row[name] = float("nan") if value is None else float(value) * (100.0 if is_acc else 1.0)
    row["Avg"] = table1_average(row)
    return row


def format_row(name: str, row: dict[str, float], columns=ALL_COLUMNS) -> str:
    cells = ["-" if row.get(c) is None or math.isnan(row[c]) else f"{row[c]:.2f}" for c in columns]
    return f"| {name} | " + " | ".join(cells) + " |"


def markdown_table1(rows: dict[str, dict[str, float]], columns=ALL_COLUMNS) -> str:
    header = "| Model | " + " | ".join(columns) + " |"
    return "\n".join([header, "|" + "---|" * (len(columns) + 1)] + [format_row(n, r, columns) for n, r in rows.items()])
