"""Print the paper's Table 1 (LM + common-sense), Table 2 (S-NIAH), Table 3 (forecasting) and Table 4 (genomics)
beside our numbers.

Our rows come from result JSONs written by eval.py, or from checkpoints that this script
evaluates first (Table 1 = suite table1, which needs the Hugging Face Hub; Table 2 = suite niah,
offline):

    python scripts/reproduce_table.py --results experiments/results/*.json
    python scripts/reproduce_table.py --tables 3 4      # reads experiments/results/{timeseries,genomics}/*.json
    python scripts/reproduce_table.py --ckpt logs/train/runs/.../checkpoints/last.ckpt --scale 340m
    make reproduce-table ARGS="--ckpt PATH --suites niah --set suite.samples_per_cell=2"
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans.eval.paper_results import (  # noqa: E402
    TABLE1,
    TABLE2,
    TABLE2_COLUMNS,
    TABLE3,
    TABLE3_MODELS,
    TABLE4,
    TABLE4_COLUMNS,
    table1_paper_row,
    table2_paper_row,
    table4_paper_row,
)
from titans.eval.results import read_record  # noqa: E402
from titans.eval.table1 import ALL_COLUMNS, format_row  # noqa: E402
from titans.eval.task_results import read_task_record, table3_entry, table4_entry  # noqa: E402

NIAH_COLUMNS = {"niah_single_1": "PK", "niah_single_2": "N", "niah_single_3": "W"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", nargs="*", default=[], help="result JSON files written by eval.py")
    parser.add_argument("--ckpt", nargs="*", default=[], help="checkpoints to evaluate first (.ckpt or HF dirs)")
    parser.add_argument("--suites", nargs="+", default=["table1", "niah"], help="suites run on each --ckpt")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra eval.py overrides for --ckpt runs, e.g. suite.limit=100")
    parser.add_argument("--scale", default="all", choices=["all", *TABLE1],
                        help="which of the paper's Table 1 blocks to print (default all)")
    parser.add_argument("--tables", nargs="+", default=["1", "2", "3", "4"], choices=["1", "2", "3", "4"])
    return parser.parse_args(argv)


def evaluate_checkpoints(ckpts, suites, overrides) -> list[Path]:
    """Run eval.py's pipeline on each checkpoint and suite; a suite that cannot run here is reported and skipped."""
    from hydra import compose, initialize_config_dir

    from titans.errors import HubUnavailableError
    from titans.eval.runner import evaluate_checkpoint
    from titans.training.hydra_utils import register_hydra

    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    register_hydra()
    paths = []
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for ckpt in ckpts:
            for suite in suites:
                cfg = compose(config_name="eval", overrides=[f"ckpt={ckpt}", f"suite={suite}", *overrides])
                try:
                    paths.append(evaluate_checkpoint(cfg))
                except HubUnavailableError as err:
                    print(f"skipped suite {suite} for {ckpt}: {err}", file=sys.stderr)
    return paths


def row_name(record: dict) -> str:
    config = (record.get("model") or {}).get("config") or {}
    checkpoint = Path(record["checkpoint"]["path"])
    label = checkpoint.parent.parent.name if checkpoint.name == "last.ckpt" else checkpoint.stem
    variant = config.get("variant")
    return f"ours: {variant} ({label})" if variant else f"ours: {label}"


def table2_row(record: dict) -> dict[str, float]:
    row = {}
    for key, value in record["results"].get("exact_match", {}).items():
        task, length = key.split("/")
        if task in NIAH_COLUMNS and int(length) % 1024 == 0:
            row[f"{NIAH_COLUMNS[task]} {int(length) // 1024}K"] = 100 * value
    return row


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def print_table1(ours: dict[str, dict], scale: str) -> None:
    scales = list(TABLE1) if scale == "all" else [scale]
    header = "| Model | " + " | ".join(ALL_COLUMNS) + " |"
    for s in scales:
        print(f"\n### Table 1 - paper, {s}\n\n{header}\n|" + "---|" * (len(ALL_COLUMNS) + 1))
        for model in TABLE1[s]:
            print(format_row(model, table1_paper_row(s, model)))
    print(f"\n### Table 1 - ours\n\n{header}\n|" + "---|" * (len(ALL_COLUMNS) + 1))
    for name, row in ours.items():
        print(format_row(name, row))
    if not ours:
        print("| (no table1 results: run eval.py suite=table1 on a machine with hub access) |")


def print_table2(ours: dict[str, dict]) -> None:
    extra = sorted({c for row in ours.values() for c in row if c not in TABLE2_COLUMNS},
                   key=lambda c: (c.split()[0], int(c.split()[1][:-1])))
    columns = TABLE2_COLUMNS + extra
    print("\n### Table 2 - S-NIAH exact match (%), paper rows then ours\n")
    print("| Model | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for model in TABLE2:
        row = table2_paper_row(model)
        print(f"| {model} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    for name, row in ours.items():
        print(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")


def print_table3(ours: dict[str, dict[str, tuple[float, float] | None]]) -> None:
    """One row per data set; each cell MSE / MAE averaged over the four horizons; the paper's models, then ours."""
    names = sorted({name for rows in ours.values() for name in rows})
    columns = [*TABLE3_MODELS, *names]
    print("\n### Table 3 - long-horizon forecasting, MSE / MAE averaged over horizons 96/192/336/720\n")
    print("| Dataset | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for dataset, rows in TABLE3.items():
        cells = [rows[m] for m in TABLE3_MODELS] + [ours.get(dataset, {}).get(n) for n in names]
        print(f"| {dataset} | " + " | ".join("-" if c is None else f"{c[0]:.3f} / {c[1]:.3f}" for c in cells) + " |")


def print_table4(ours: dict[str, dict[str, float]]) -> None:
    print("\n### Table 4 - GenomicBenchmarks top-1 accuracy (%), paper rows then ours\n")
    print("| Model | " + " | ".join(TABLE4_COLUMNS) + " |\n|" + "---|" * (len(TABLE4_COLUMNS) + 1))
    for model in TABLE4:
        row = table4_paper_row(model)
        print(f"| {model} | " + " | ".join("-" if row[c] is None else f"{row[c]:.1f}" for c in TABLE4_COLUMNS) + " |")
    for name, row in ours.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" if c in row else "-" for c in TABLE4_COLUMNS) + " |")


def default_task_results() -> list[Path]:
    results = ROOT / "experiments" / "results"
    return sorted([*results.glob("timeseries/ts_*.json"), *results.glob("genomics/*.json")])


def main(argv=None) -> None:
    args = parse_args(argv)
    paths = [Path(p) for p in args.results]
    if args.ckpt:
        paths += evaluate_checkpoints(args.ckpt, args.suites, args.set)
    if not args.results and ({"3", "4"} & set(args.tables)):
        paths += default_task_results()
    table1_rows, table2_rows = {}, {}
    table3_rows: dict[str, dict] = {}
    table4_rows: dict[str, dict] = {}
    for path in paths:
        task_record = read_task_record(path)
        if task_record is not None:
            if task_record["suite"] == "timeseries":
                dataset, name, value = table3_entry(task_record)
                table3_rows.setdefault(dataset, {})[name] = value
            else:
                name, row = table4_entry(task_record)
                if row:  # offline records (planted motifs) have no Table 4 task
                    table4_rows[name] = row
            continue
        record = read_record(path)
        if "table1" in record["results"]:
            table1_rows[row_name(record)] = record["results"]["table1"]
        if record["results"].get("exact_match"):
            table2_rows[row_name(record)] = table2_row(record)
    if "1" in args.tables:
        print_table1({k: {c: (math.nan if v.get(c) is None else v[c]) for c in ALL_COLUMNS}
                      for k, v in table1_rows.items()}, args.scale)
    if "2" in args.tables:
        print_table2(table2_rows)
    if "3" in args.tables:
        print_table3(table3_rows)
    if "4" in args.tables:
        print_table4(table4_rows)


if __name__ == "__main__":
    main()
