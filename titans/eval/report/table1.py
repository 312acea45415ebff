"""Table 1 of the paper (language modelling and common-sense reasoning, zero-shot) with our rows: suite=table1's
columns, and the bundled corpus's perplexity at the training length for CPU-scale runs."""

from __future__ import annotations

from titans.eval import paper_results as paper
from titans.eval.report.blocks import Block, place
from titans.eval.report.cells import CORPUS_PPL, corpus_ppl, results_of, trained_length
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, run_row
from titans.eval.table1 import ALL_COLUMNS as TABLE1_COLUMNS

TABLE1_REPRODUCIBLE = {"Transformer++", "DeltaNet", "TTT", "Gated DeltaNet", "Titans (LMM)", "Titans (MAC)",
                       "Titans (MAG)", "Titans (MAL)"}


def table1_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        if not run.identity.plain or run.identity.variant is None:
            continue
        values = {}
        table1 = results_of(run, "table1")
        if table1:
            values.update({c: table1["table1"].get(c) for c in TABLE1_COLUMNS})
        ppl = results_of(run, "perplexity")
        if ppl:
            values[CORPUS_PPL] = corpus_ppl(ppl, trained_length(run))
        if values:
            rows.append(run_row(run, run.identity.name, values))
    return rows


def table1_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    scales = list(paper.TABLE1) if options.table1_scale == "all" else [options.table1_scale]
    blocks = [Block(f"Table 1 - {scale} (paper: {'100B' if scale == '1.3b' else '30B' if scale == '760m' else '15B'}"
                    f" tokens)", list(TABLE1_COLUMNS),
                    {m: paper.table1_paper_row(scale, m) for m in paper.TABLE1[scale]}, size=scale,
                    reproducible=TABLE1_REPRODUCIBLE) for scale in scales]
    place(blocks, rows)
    if any(CORPUS_PPL in r.values for b in blocks for r in b.ours):
        blocks[0].notes.append(f"`{CORPUS_PPL}`: our validation perplexity on the bundled corpus at the training "
                               f"length (CPU-scale runs; no lm-eval tasks offline). Rows at a size the paper does "
                               f"not report sit in the first block.")
    return blocks


TABLE1_ENTRY = ReportEntry("1", "Table 1: language modelling and common-sense reasoning (zero-shot)", table1_ours,
                           table1_paper)
