"""One of our rows (:class:`OurRow`: the cells, the scale, the dates and commits of the result files), a run's row
(:func:`run_row`), and the rows of repeated runs as one row of their means (:func:`average_rows`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from titans.eval.report.inputs import Run


@dataclass
class OurRow:
    """One of our rows: ``model`` is the paper row it stands beside (or our own name when the paper has none)."""

    model: str
    values: dict[str, float | None]
    scale: str
    size: str | None = None
    dates: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    n: int = 1
    note: str = ""
    group: str = ""  # which block of an entry the row belongs to (e.g. a BABILong prompt style)

    def label(self) -> str:
        marks = [self.scale] + ([self.note] if self.note else [])
        marks += [", ".join(self.dates) or "?", "commit " + "+".join(self.commits or ["?"])]
        if self.n > 1:
            marks.append(f"mean of {self.n} runs")
        return f"↳ ours: {self.model} [{'; '.join(marks)}]"


def _mean(values: list):
    """The mean of the numbers among ``values`` (None and NaN skipped); a cell of another kind (a tuple such as
    (MSE, MAE), a string) is averaged element-wise when all are tuples of numbers, else the first is kept."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    if all(isinstance(v, (int, float)) for v in values):
        return sum(values) / len(values)
    if all(isinstance(v, (tuple, list)) for v in values) and len({len(v) for v in values}) == 1:
        return tuple(sum(parts) / len(parts) for parts in zip(*values))
    return values[0]


def average_rows(rows: list[OurRow]) -> list[OurRow]:
    """Rows of the same model, scale, note and group (seeds, repeated evaluations) as one row of their means."""
    groups: dict[tuple, list[OurRow]] = {}
    for row in rows:
        groups.setdefault((row.model, row.scale, row.note, row.group), []).append(row)
    out = []
    for same in groups.values():
        columns = list(dict.fromkeys(c for r in same for c in r.values))
        # runs behind the fullest cell: two seeds of one model make 2; one run per column (data sets) makes 1
        n = max([sum(r.n for r in same if r.values.get(c) is not None) for c in columns] + [1])
        out.append(OurRow(same[0].model, {c: _mean([r.values.get(c) for r in same]) for c in columns},
                          same[0].scale, same[0].size, sorted({d for r in same for d in r.dates}),
                          sorted({c for r in same for c in r.commits}), n, same[0].note, same[0].group))
    return out


def run_row(run: Run, model: str, values: dict, note: str = "", group: str = "") -> OurRow:
    """The row of one run: its scale, size, dates and commits."""
    return OurRow(model, values, run.scale, run.size, run.dates, run.commits, 1, note, group)
