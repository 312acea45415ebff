"""Table 1 / Table 2 bookkeeping: paper numbers, our rows from lm-eval output, reproduce_table.py."""

from __future__ import annotations

import math

import pytest

from titans.eval.paper_results import TABLE1, TABLE2, table1_paper_row
from titans.eval.results import build_record, read_record, write_record
from titans.eval.table1 import ACCURACY_COLUMNS, TABLE1_TASKS, table1_average, table1_row


# Rows whose printed Avg is not the mean of their accuracies (typos of the paper's Table 1; docs/design.md).
PAPER_AVG_TYPOS = {("400m", "Gated DeltaNet-H2∗"), ("400m", "Titans (LMM)"), ("760m", "TTT"),
                   ("760m", "Titans (MAL) [NeurIPS main Tab. 1]"), ("1.3b", "Titans (MAC)")}


def test_paper_avg_is_the_mean_of_the_eight_accuracies():
    assert len(ACCURACY_COLUMNS) == 8
    for scale, rows in TABLE1.items():
        for model in rows:
            row = table1_paper_row(scale, model)
            matches = abs(table1_average(row) - row["Avg"]) <= 0.02
            assert matches != ((scale, model) in PAPER_AVG_TYPOS), (scale, model)
    assert all(len(v) == 12 for v in TABLE2.values())


def _lm_eval_results():
    results = {task: {"acc,none": 0.5, "acc_norm,none": 0.25} for task in TABLE1_TASKS}
    results["wikitext"] = {"word_perplexity,none": 31.5}
    results["lambada_openai"] = {"perplexity,none": 40.0, "acc,none": 0.3}
    return results


def test_table1_row_picks_the_paper_metrics():
    row = table1_row(_lm_eval_results())
    assert row["Wiki ppl"] == 31.5 and row["LMB ppl"] == 40.0 and row["LMB acc"] == pytest.approx(30.0)
    assert row["Hella acc_n"] == 25.0 and row["ARC-c acc_n"] == 25.0  # acc_norm columns
    assert row["PIQA acc"] == 50.0 and row["ARC-e acc"] == 50.0
    assert row["Avg"] == pytest.approx((30 + 50 * 5 + 25 * 2) / 8)
    missing = table1_row({"piqa": {"acc,none": 0.6}})
    assert math.isnan(missing["Wiki ppl"]) and math.isnan(missing["Avg"]) and missing["PIQA acc"] == 60.0


class _FakeModel:
    class config:  # noqa: N801
        @staticmethod
        def to_dict():
            return {"variant": "mac"}

    def parameters(self):
        return []


def test_reproduce_table_prints_paper_and_our_rows(tmp_path, capsys):
    table1 = build_record("table1", tmp_path, {"suite": {"name": "table1"}}, _FakeModel(),
                          {"table1": table1_row(_lm_eval_results())})
    niah = build_record("niah", tmp_path, {}, _FakeModel(),
                        {"exact_match": {"niah_single_1/2048": 1.0, "niah_single_1/4096": 0.5,
                                         "niah_single_2/2048": 0.25, "niah_single_3/32768": 0.0}})
    paths = [write_record(table1, tmp_path, "t1"), write_record(niah, tmp_path, "niah")]
    assert read_record(paths[0])["results"]["table1"]["Avg"] == pytest.approx(table1_row(_lm_eval_results())["Avg"])

    from scripts import reproduce_table as module

    module.main(["--results", *map(str, paths), "--scale", "760m", "--tables", "1", "2", "--no-write"])
    out = capsys.readouterr().out
    assert "| Titans (MAC) | 19.93 | 20.12 | 39.62 |" in out  # a paper row
    ours = [line for line in out.splitlines() if line.startswith("| ↳ ours: Titans (MAC) [custom shape")]
    assert len(ours) == 2 and "| 31.50 | 40.00 | 30.00 |" in ours[0]

    def cells_of(line):
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells_of([line for line in out.splitlines() if line.startswith("| Model | PK 2K")][0])
    cells = cells_of(ours[1])
    assert cells[header.index("PK 2K")] == "100.00" and cells[header.index("PK 4K")] == "50.00"
    assert cells[header.index("N 2K")] == "25.00" and cells[header.index("PK 16K")] == "-"
    assert "W 32K" in header


def test_table3_and_table4_paper_numbers_and_our_rows(tmp_path, capsys):
    import json

    from titans.eval.paper_results import TABLE3, TABLE4, TABLE4_TASKS
    from titans.eval.task_results import table3_entry

    assert TABLE3["ETTh1"]["Simba"] == (0.441, 0.432) and TABLE3["ETTh2"]["Neural Memory"] == (0.336, 0.382)
    assert all(len(rows) == 9 for rows in TABLE3.values()) and all(len(v) == 5 for v in TABLE4.values())
    horizons = {str(h): {"test/mse": 0.1 * i, "test/mae": 0.2 * i} for i, h in enumerate((96, 192, 336, 720), 1)}
    full = {"suite": "timeseries", "experiment": "ts_etth2_lmm", "horizons": horizons,
            "average": {"test/mse": 0.25, "test/mae": 0.5}}
    partial = {**full, "experiment": "ts_etth1_dlinear", "horizons": {"96": horizons["96"]}}
    genomics = {"suite": "genomics", "name": "lmm_tiny",
                "tasks": {TABLE4_TASKS["Non-TATA Promoters"]: {"test/acc": 0.9123}, "planted_motifs": {"test/acc": 1.0}}}
    paths = []
    for name, record in (("ts_etth2_lmm", full), ("ts_etth1_dlinear", partial), ("genomics", genomics)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(record))
    assert table3_entry(partial)[2] is None  # not all four horizons: no average in the table

    from scripts import reproduce_table as module

    module.main(["--results", *map(str, paths), "--tables", "3", "4", "--no-write"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("| Model | ETTm1")).strip("|").split("|")]
    memory = lines.index("| Neural Memory | 0.358 / 0.387 | 0.261 / 0.309 | 0.420 / 0.421 | 0.336 / 0.382 | "
                         "0.162 / 0.261 | 0.415 / 0.289 | 0.231 / 0.265 |")
    ours = [c.strip() for c in lines[memory + 1].strip("|").split("|")]  # our row right below the paper's
    assert ours[0].startswith("↳ ours: Neural Memory") and ours[header.index("ETTh2")] == "0.250 / 0.500"
    assert ours[header.index("ETTh1")] == "-"  # another data set
    dlinear = next(line for line in lines if line.startswith("| ↳ ours: DLinear"))
    assert dlinear.endswith("| - | - | - | - | - | - | - |")  # not all four horizons: no average
    assert "| Neural Memory Module | 75.2 | 89.6 | 89.3 | 96.6 | 79.9 |" in out
    assert any(line.startswith("| ↳ ours: lmm_tiny") and line.endswith("| - | - | - | 91.2 | - |") for line in lines)
