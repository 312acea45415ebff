"""The report: every entry in the paper's order (``ENTRIES``, keyed by what ``--tables`` takes) and
:func:`build_report`, their markdown and, in a directory, report.md and the PNGs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.figure6 import FIGURE6_ENTRY
from titans.eval.report.figure7 import FIGURE7_ENTRY
from titans.eval.report.figures8_9 import FIGURE8_ENTRY, FIGURE9_ENTRY
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.table1 import TABLE1_ENTRY
from titans.eval.report.table2 import TABLE2_ENTRY
from titans.eval.report.table5 import TABLE5_ENTRY
from titans.eval.report.tables3_4 import TABLE3_ENTRY, TABLE4_ENTRY

ENTRIES: dict[str, ReportEntry] = {entry.key: entry for entry in (
    TABLE1_ENTRY, TABLE2_ENTRY, TABLE3_ENTRY, TABLE4_ENTRY, TABLE5_ENTRY, FIGURE6_ENTRY, FIGURE7_ENTRY,
    FIGURE8_ENTRY, FIGURE9_ENTRY)}


def build_report(inputs: ReportInputs, keys: Iterable[str] | None = None, options: ReportOptions = ReportOptions(),
                 directory: str | Path | None = None) -> tuple[str, list[Path]]:
    """The markdown of the entries ``keys`` (all, in order, by default) and, with ``directory``, their PNGs there
    (and the markdown as report.md)."""
    keys = list(ENTRIES) if keys is None else list(keys)
    unknown = [k for k in keys if k not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown table or figure {', '.join(unknown)}: choose from {', '.join(ENTRIES)}")
    sections, figures = [], []
    for key in keys:
        entry = ENTRIES[key]
        text, rows = entry.markdown(inputs, options)
        if directory is not None and entry.figure is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            pngs = entry.figure(rows, inputs, Path(directory))
            figures += pngs
            text += "".join(f"\n![{p.stem}]({p.name})\n" for p in pngs)
        sections.append(text)
    markdown = "\n".join(sections)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "report.md").write_text(markdown, encoding="utf-8")
    return markdown, figures
