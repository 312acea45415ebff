"""Figures 8 and 9 of the paper (training throughput: by memory depth; by sequence length and length x batch) with
our rows: scripts/bench_throughput.py's result files."""

from __future__ import annotations

from pathlib import Path

from titans.eval import paper_results as paper
from titans.eval.long_context import length_label
from titans.eval.report.blocks import FIGURE_ONLY, Block, place, plot_only
from titans.eval.report.columns import length_order
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow

#: the columns of a block before any run of ours: bench_throughput's default lengths
THROUGHPUT_DEFAULT_COLUMNS = ["256", "512", "1K", "2K"]


def _throughput_records(inputs: ReportInputs) -> list[dict]:
    return [d for d in inputs.documents if d.get("kind") == "throughput"]


def _throughput_rows(inputs: ReportInputs, sweeps: tuple[str, ...]) -> list[OurRow]:
    from titans.models.variants import display_name

    rows = []
    for record in _throughput_records(inputs):
        settings = record.get("settings", {})
        scale = f"{record.get('device', '?')}, {settings.get('size', '?')}, {settings.get('dtype', '?')}, " \
                f"{settings.get('threads', '?')} thread(s)"
        for sweep in sweeps:
            results = [r for r in record.get("results", []) if r.get("sweep") == sweep and "tok_s" in r]
            for key in dict.fromkeys((r["model"], r.get("depth")) for r in results):
                line = [r for r in results if (r["model"], r.get("depth")) == key]
                name = f"LMM (L_M={key[1]})" if sweep == "depth" else display_name(key[0])
                values = {(f"{length_label(r['length'])} x {r['batch']}" if sweep == "batch_x_length"
                           else length_label(r["length"])): r["tok_s"] for r in line}
                rows.append(OurRow(name, values, scale, None, [str(record.get("created_utc", ""))[:10]],
                                   [str(record.get("git_commit") or "?")[:7]], group=sweep))
    return rows


def _throughput_png(inputs: ReportInputs, directory: Path, name: str) -> list[Path]:
    from titans.eval.plots import throughput_plot

    out = []
    for i, record in enumerate(_throughput_records(inputs)):
        device = "cuda" if "cpu" not in str(record.get("device", "")).lower() else "cpu"
        out.append(throughput_plot(record, directory / f"{name}_{device}_{i}.png"))
    return out


def _column_order(column: str) -> int:
    return length_order(f"x {column.split(' x ')[0]}")[1]


def figure8_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted({c for r in rows for c in r.values}, key=_column_order) or THROUGHPUT_DEFAULT_COLUMNS
    block = Block("Figure 8 - training tokens/s of the LMM by memory depth", columns,
                  {m: plot_only(columns) for m in paper.FIGURE7_MODELS[:4]},
                  reproducible=set(paper.FIGURE7_MODELS[:4]), decimals=0,
                  notes=[f"`{FIGURE_ONLY}`: a plot in the paper. Ours: scripts/bench_throughput.py --sweeps depth."])
    place([block], rows)
    return [block]


FIGURE8_ENTRY = ReportEntry("fig8", "Figure 8: deep memory, training throughput",
                            lambda i: _throughput_rows(i, ("depth",)), figure8_paper)


def figure9_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    blocks = []
    for sweep, title in (("length", "Figure 9 - training tokens/s by sequence length"),
                         ("batch_x_length", "Figure 9 - training tokens/s, sequence length x batch at a fixed "
                                            "number of tokens per step")):
        mine = [r for r in rows if r.group == sweep]
        columns = sorted({c for r in mine for c in r.values}, key=_column_order) or THROUGHPUT_DEFAULT_COLUMNS
        block = Block(title, columns, {m: plot_only(columns) for m in paper.FIGURE9_MODELS},
                      reproducible={m for m in paper.FIGURE9_MODELS if m not in ("Mamba2",)}, decimals=0,
                      notes=[f"`{FIGURE_ONLY}`: a plot in the paper (hardware and sizes not stated). Ours: "
                             f"scripts/bench_throughput.py (forward, backward and AdamW step, best of repeats)."])
        place([block], mine)
        blocks.append(block)
    return blocks


FIGURE9_ENTRY = ReportEntry("fig9", "Figure 9: training throughput",
                            lambda i: _throughput_rows(i, ("length", "batch_x_length")), figure9_paper,
                            lambda rows, inputs, d: _throughput_png(inputs, d, "figure9_throughput"))
