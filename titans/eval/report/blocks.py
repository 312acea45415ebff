"""One markdown table of the report (:class:`Block`): the paper's rows, ours placed under the paper row of the same
model (:func:`place`), and its markdown (:func:`render_block`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from titans.eval.report.rows import OurRow

FIGURE_ONLY = "plot only"  # the paper's row of a model whose values exist only in a plot


def _clean(name: str) -> str:
    """A paper row's model name without hybrid marks and version notes: "Titans (MAL)∗ [v1]" -> "Titans (MAL)"."""
    return re.sub(r"\s*\[.*?\]", "", name).replace("∗", "").strip()


def _name_key(name: str) -> str:
    return _clean(name).lower()


@dataclass
class Block:
    """One markdown table: the paper's rows (``paper``: name -> cells) with ours placed under them."""

    title: str
    columns: list[str]
    paper: dict[str, dict]
    size: str | None = None  # our rows at this size go here
    reproducible: set[str] | None = None  # paper rows we can run: a "-" row when we have none
    notes: list[str] = field(default_factory=list)
    decimals: int = 2
    ours: list[OurRow] = field(default_factory=list)


def place(blocks: list[Block], rows: list[OurRow]) -> None:
    """Each row into the first block of its size, or the first block when no block has it."""
    if not blocks:
        return
    sizes = {b.size for b in blocks}
    for row in rows:
        fitting = [b for b in blocks if b.size == row.size] if row.size in sizes else []
        (fitting or blocks)[0].ours.append(row)


def plot_only(columns: list[str]) -> dict[str, str]:
    """The cells of a paper row whose values the paper gives only in a plot."""
    return {c: (FIGURE_ONLY if i == 0 else "") for i, c in enumerate(columns)}


def _cell(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):  # e.g. (MSE, MAE)
        return " / ".join(_cell(v, decimals) for v in value)
    return f"{value:.{decimals}f}"


def render_block(block: Block) -> str:
    extra = [c for c in dict.fromkeys(c for r in block.ours for c in r.values) if c not in block.columns]
    columns = block.columns + extra
    lines = [f"### {block.title}", "", "| Model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]

    def line(name, cells):
        return f"| {name} | " + " | ".join(_cell(cells.get(c), block.decimals) for c in columns) + " |"

    placed = set()
    for name, cells in block.paper.items():
        lines.append(line(name, cells))
        key = _name_key(name)
        if key in placed:
            continue
        mine = [r for r in block.ours if _name_key(r.model) == key]
        if mine:
            placed.add(key)
            lines += [line(r.label(), r.values) for r in mine]
        elif block.reproducible is not None and key in {_name_key(m) for m in block.reproducible}:
            placed.add(key)
            lines.append(line(f"↳ ours: {_clean(name)} [no run]", {}))
    lines += [line(r.label(), r.values) for r in block.ours if _name_key(r.model) not in placed]
    if block.notes:
        lines += [""] + [f"{note}" for note in block.notes]
    return "\n".join(lines)
