"""Figure 7 of the paper (deep memory: perplexity by sequence length) with our rows: suite=perplexity's
perplexity by window length, one block per model size of the paper's panels."""

from __future__ import annotations

from pathlib import Path

from titans.eval import paper_results as paper
from titans.eval.long_context import length_label
from titans.eval.report.blocks import FIGURE_ONLY, Block, place, plot_only
from titans.eval.report.cells import results_of, trained_length
from titans.eval.report.columns import length_order
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.figures import plot_lines
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, run_row

#: the columns before any run of ours: suite=perplexity's default lengths
FIGURE7_DEFAULT_COLUMNS = ["512", "1K", "2K", "4K", "8K", "16K"]


def figure7_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        name = run.identity.figure7_row or (run.identity.name if run.identity.plain and run.identity.variant
                                            else None)
        ppl = results_of(run, "perplexity")
        if name and ppl:
            values = {length_label(int(n)): v for n, v in sorted(ppl["by_length"].items(), key=lambda kv: int(kv[0]))}
            rows.append(run_row(run, name, values, note=f"trained at {trained_length(run)}"))
    return rows


def figure7_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted({c for r in rows for c in r.values}, key=lambda c: length_order(f"x {c}")[1]) or \
        FIGURE7_DEFAULT_COLUMNS
    blocks = [Block(f"Figure 7 ({panel}) - perplexity by sequence length", columns,
                    {m: plot_only(columns) for m in paper.FIGURE7_MODELS}, size=size,
                    reproducible={m for m in paper.FIGURE7_MODELS if m.startswith("LMM")},
                    notes=[f"`{FIGURE_ONLY}`: a plot in the paper (a Pile subset; lengths and tokens not stated). "
                           f"Ours: suite=perplexity, windows of each length scored from their start. Rows at a size "
                           f"the paper does not show sit in the first block."])
              for panel, size in paper.FIGURE7_SIZES.items()]
    place(blocks, rows)
    return blocks


def figure7_png(rows: list[OurRow], inputs: ReportInputs, directory: Path) -> list[Path]:
    from titans.eval.plots import _pyplot, _save

    if not rows:
        return []
    plt = _pyplot()
    sizes = list(dict.fromkeys(r.size for r in rows))  # one panel per model size, as the paper's panels
    fig, axes = plt.subplots(len(sizes), 1, figsize=(9, 4 * len(sizes)), squeeze=False, layout="constrained")
    for ax, size in zip(axes[:, 0], sizes):
        mine = [r for r in rows if r.size == size]
        several = len({r.scale for r in mine}) > 1  # e.g. an unmatched depth-4 memory has more parameters
        plot_lines(ax, {(f"{r.model} ({r.scale})" if several else r.model): r.values for r in mine},
                   "sequence length", "perplexity")
        ax.set_title(f"Figure 7: {mine[0].scale if not several else size or 'custom shape'}", fontsize=9)
    return [_save(plt, fig, directory / "figure7_perplexity.png")]


FIGURE7_ENTRY = ReportEntry("fig7", "Figure 7: deep memory, perplexity by sequence length", figure7_ours,
                            figure7_paper, figure7_png)
