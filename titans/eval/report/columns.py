"""The columns of the report's blocks: S-NIAH's task letters (Table 2) and the order of ``"<task> <length>"``
columns (by the paper's task order, then by length in tokens)."""

from __future__ import annotations

import re

NIAH_COLUMNS = {"niah_single_1": "PK", "niah_single_2": "N", "niah_single_3": "W"}


def length_order(column: str) -> tuple:
    """Sort key of a "<task> <length>" column: the paper's task order (PK, N, W), then the length in tokens."""
    task, _, length = column.partition(" ")
    digits = re.fullmatch(r"(\d+)([KM]?)", length)
    value = int(digits[1]) * {"": 1, "K": 1024, "M": 1024 ** 2}[digits[2]] if digits else 0
    order = list(NIAH_COLUMNS.values())
    return (order.index(task) if task in order else len(order), task), value
