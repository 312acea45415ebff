"""Table 5 of the paper (ablations of the LMM) with our rows: its three aggregates (LM ppl, reasoning accuracy,
long-context accuracy) computed from Table 1's and Table 2's cells of each run."""

from __future__ import annotations

import math

from titans.eval import paper_results as paper
from titans.eval.report.blocks import Block, place
from titans.eval.report.cells import CORPUS_PPL, corpus_ppl, niah_cells, results_of, trained_length
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, run_row


def table5_lm_ppl(table1_row: dict) -> float | None:
    """Table 5's language-modelling ppl: the mean of Wikitext and LAMBADA perplexity (Table 1's first two columns)."""
    wiki, lmb = table1_row.get("Wiki ppl"), table1_row.get("LMB ppl")
    return None if None in (wiki, lmb) or math.isnan(wiki) or math.isnan(lmb) else (wiki + lmb) / 2


def table5_reasoning(table1_row: dict) -> float | None:
    """Table 5's reasoning accuracy: Table 1's Avg (the mean of its eight accuracies)."""
    from titans.eval.table1 import table1_average

    value = table1_average(table1_row)
    return None if math.isnan(value) else value


def table5_long_context(niah_cells: dict[str, float]) -> float | None:
    """Table 5's long-context accuracy: the mean of the S-NIAH cells (Table 2's columns, in %)."""
    values = [v for v in niah_cells.values() if v is not None]
    return sum(values) / len(values) if values else None


def table5_aggregates(table1_row: dict | None, niah_cells: dict | None) -> dict[str, float | None]:
    return {"LM ppl": table5_lm_ppl(table1_row) if table1_row else None,
            "Reasoning acc": table5_reasoning(table1_row) if table1_row else None,
            "Long context acc": table5_long_context(niah_cells) if niah_cells else None}


def table5_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        name = run.identity.table5_row
        if name is None:
            continue
        table1, niah, ppl = results_of(run, "table1"), results_of(run, "niah"), results_of(run, "perplexity")
        values = table5_aggregates(table1["table1"] if table1 else None, niah_cells(niah) if niah else None)
        if ppl:
            values[CORPUS_PPL] = corpus_ppl(ppl, trained_length(run))
        if any(v is not None for v in values.values()):
            rows.append(run_row(run, name, values))
    return rows


def table5_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 5 - ablations at 400M (paper: 15B tokens)", list(paper.TABLE5_COLUMNS),
                  {m: dict(zip(paper.TABLE5_COLUMNS, v)) for m, v in paper.TABLE5.items()}, size="400m",
                  reproducible=set(paper.TABLE5),
                  notes=["LM ppl = mean(Wiki ppl, LMB ppl); Reasoning = Table 1's Avg; Long context = mean of the "
                         "S-NIAH cells we ran (Table 2's columns). Ours: `python train.py experiment=lmm_400m` "
                         "(LMM), `mac_400m` ... and `ablation_lmm_<row>`; then eval.py suite=table1 and suite=niah."])
    place([block], rows)
    if any(CORPUS_PPL in r.values for r in block.ours):
        block.notes.append(f"`{CORPUS_PPL}`: validation perplexity of the bundled corpus at the training length "
                           f"(CPU scale, in place of Wikitext/LAMBADA).")
    return [block]


TABLE5_ENTRY = ReportEntry("5", "Table 5: ablations of the LMM", table5_ours, table5_paper)
