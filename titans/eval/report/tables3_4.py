"""Tables 3 and 4 of the paper (long-term forecasting, DNA modelling) with our rows, read from their own result
files (titans.eval.task_results): scripts/run_forecasting.py's and the genomics runs'."""

from __future__ import annotations

from pathlib import Path

from titans.eval import paper_results as paper
from titans.eval.report.blocks import Block, place
from titans.eval.report.entry import ReportEntry, ReportOptions
from titans.eval.report.inputs import ReportInputs
from titans.eval.report.rows import OurRow


def _task_row(document: dict, name: str, values: dict) -> OurRow:
    scale = document.get("protocol") or document.get("command", "?")
    return OurRow(name.removeprefix("ours: "), values, scale.split(";")[0], None,
                  [str(document.get("created_utc", ""))[:10]], [str(document.get("git_commit") or "?")[:7]])


def table3_ours(inputs: ReportInputs) -> list[OurRow]:
    from titans.eval.task_results import table3_entry

    rows = []
    for document in inputs.documents:
        # <experiment>.json (scripts/run_forecasting.py), not the hyper-parameter search's files of the same runs
        if document.get("suite") == "timeseries" and Path(document["_path"]).stem == document.get("experiment"):
            dataset, name, value = table3_entry(document)
            rows.append(_task_row(document, name, {dataset: value}))
    return rows


def table3_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 3 - long-horizon forecasting, MSE / MAE averaged over horizons 96/192/336/720",
                  list(paper.TABLE3_DATASETS),
                  {m: {d: paper.TABLE3[d][m] for d in paper.TABLE3_DATASETS} for m in paper.TABLE3_MODELS},
                  reproducible={"Neural Memory", "DLinear"}, decimals=3)
    place([block], rows)
    return [block]


TABLE3_ENTRY = ReportEntry("3", "Table 3: long-term forecasting", table3_ours, table3_paper)


def table4_ours(inputs: ReportInputs) -> list[OurRow]:
    from titans.eval.task_results import table4_entry

    rows = []
    for document in inputs.documents:
        if document.get("suite") == "genomics" and "tasks" in document:
            name, values = table4_entry(document)
            if values:
                rows.append(_task_row(document, name, values))
    return rows


def table4_paper(rows: list[OurRow], options: ReportOptions) -> list[Block]:
    block = Block("Table 4 - GenomicBenchmarks, top-1 accuracy (%)", list(paper.TABLE4_COLUMNS),
                  {m: paper.table4_paper_row(m) for m in paper.TABLE4}, reproducible={"Neural Memory Module"},
                  decimals=1)
    place([block], rows)
    return [block]


TABLE4_ENTRY = ReportEntry("4", "Table 4: DNA modelling", table4_ours, table4_paper)
