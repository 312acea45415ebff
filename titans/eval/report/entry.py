"""What one table or figure of the report is (:class:`ReportEntry`: our rows, the paper's blocks, an optional
figure) and its markdown; the options the command line passes to every entry (:class:`ReportOptions`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from titans.eval.report.blocks import Block, render_block
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, average_rows


@dataclass(frozen=True)
class ReportOptions:
    table1_scale: str = "all"


@dataclass(frozen=True)
class ReportEntry:
    key: str  # what --tables takes: "1" .. "5", "fig6" ...
    title: str
    ours: Callable[[ReportInputs], list[OurRow]]
    paper: Callable[[list[OurRow], ReportOptions], list[Block]]
    figure: Callable[[list[OurRow], ReportInputs, Path], list[Path]] | None = None

    def markdown(self, inputs: ReportInputs, options: ReportOptions = ReportOptions()) -> tuple[str, list[OurRow]]:
        rows = average_rows(self.ours(inputs))
        blocks = self.paper(rows, options)
        text = "\n\n".join(render_block(b) for b in blocks)
        return f"## {self.title}\n\n{text}\n", rows
