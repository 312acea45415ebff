"""Table 2 of the paper (single needle in a haystack, RULER S-NIAH) with our rows: suite=niah's exact match."""

from __future__ import annotations

from titans.eval import paper_results as paper
from titans.eval.report.blocks import Block, place
from titans.eval.report.cells import niah_cells, results_of
from titans.eval.report.columns import length_order
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, run_row


def table2_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        niah = results_of(run, "niah")
        if niah and run.identity.plain and run.identity.variant is not None:
            rows.append(run_row(run, run.identity.name, niah_cells(niah)))
    return rows


def table2_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = list(paper.TABLE2_COLUMNS)
    extra = sorted({c for r in rows for c in r.values if c not in columns}, key=length_order)
    block = Block("Table 2 - S-NIAH exact match (%), trained at 4K", sorted(columns + extra, key=length_order),
                  {m: paper.table2_paper_row(m) for m in paper.TABLE2},
                  reproducible={"TTT", "DeltaNet", "Titans (LMM)", "Titans (MAC)", "Titans (MAG)", "Titans (MAL)"},
                  notes=["PK = S-NIAH-1 (passkey), N = S-NIAH-2 (number), W = S-NIAH-3 (word/uuid needle); the "
                         "paper does not state the scale of this table."])
    place([block], rows)
    return [block]


TABLE2_ENTRY = ReportEntry("2", "Table 2: single needle in a haystack (RULER S-NIAH)", table2_ours, table2_paper)
