"""Figure 6 of the paper (BABILong, few-shot and fine-tuned) with our rows: the babilong suites' accuracy by
context length, one block and one panel per prompt style."""

from __future__ import annotations

from pathlib import Path

from titans.eval import paper_results as paper
from titans.eval.long_context import length_label
from titans.eval.report.blocks import FIGURE_ONLY, Block, place, plot_only
from titans.eval.report.columns import length_order
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.figures import plot_lines
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow, run_row


def figure6_ours(inputs: ReportInputs) -> list[OurRow]:
    rows = []
    for run in inputs.runs:
        if not run.identity.plain or run.identity.variant is None:
            continue
        for record in run.records.values():
            results = record.get("results") or {}
            if "acc" not in results:
                continue
            by_length: dict[int, list[float]] = {}
            tasks = set()
            for key, value in results["acc"].items():
                task, _, length = key.partition("/")
                tasks.add(task)
                by_length.setdefault(int(length), []).append(value)
            values = {length_label(n): 100 * sum(v) / len(v) for n, v in sorted(by_length.items())}
            source = "offline stories" if (record.get("config") or {}).get("suite", {}).get("source") == "offline" \
                else "RMT-team/babilong"
            tasks = sorted(tasks, key=lambda t: int(t[2:]) if t[2:].isdigit() else 0)
            note = f"{source}, mean of {tasks[0]}-{tasks[-1]}" if len(tasks) > 1 else f"{source}, {tasks[0]}"
            rows.append(run_row(run, run.identity.name, values, note=note, group=results.get("prompt", "finetuned")))
    return rows


def figure6_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    columns = sorted(set(paper.FIGURE6_LENGTHS) | {c for r in rows for c in r.values},
                     key=lambda c: length_order(f"x {c}")[1])
    blocks = []
    for style, title in (("few_shot", "Figure 6a - BABILong few-shot, accuracy (%)"),
                         ("finetuned", "Figure 6b - BABILong fine-tuned, accuracy (%)")):
        rows_paper = {m: plot_only(columns) for m in paper.FIGURE6_MODELS[style]}
        notes = [f"`{FIGURE_ONLY}`: the paper gives this model's values only in its plot; `-`: no run of ours."]
        if style == "finetuned":
            rows_paper.update({m: dict(zip(paper.FIGURE6_LENGTHS, v)) for m, v in paper.FIGURE6_TEXT.items()})
            notes.append("ARMT and GPT2 + MAC + MAL: numbers stated in the text of NeurIPS App. G.1. Our rows here "
                         "are records of the fine-tuned setting's prompt (suite=babilong, babilong_offline): run "
                         "them on fine-tuned checkpoints.")
        block = Block(title, columns, rows_paper, reproducible={"Titans (MAC)"}, notes=notes, decimals=1)
        blocks.append(block)
    for block, style in zip(blocks, ("few_shot", "finetuned")):
        place([block], [r for r in rows if r.group == style])
    return blocks


def figure6_png(rows: list[OurRow], inputs: ReportInputs, directory: Path) -> list[Path]:
    from titans.eval.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 8), squeeze=False, layout="constrained")
    for ax, (style, title) in zip(axes[:, 0], (("few_shot", "(a) few-shot"), ("finetuned", "(b) fine-tuned"))):
        series = {m: dict(zip(paper.FIGURE6_LENGTHS, v)) for m, v in paper.FIGURE6_TEXT.items()} \
            if style == "finetuned" else {}
        series.update({r.label().replace("↳ ", ""): r.values for r in rows if r.group == style})
        plot_lines(ax, series, "context length", "accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(f"Figure 6 {title}")
    return [_save(plt, fig, directory / "figure6_babilong.png")]


FIGURE6_ENTRY = ReportEntry("fig6", "Figure 6: BABILong", figure6_ours, figure6_paper, figure6_png)
