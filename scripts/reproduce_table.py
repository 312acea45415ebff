"""The paper's tables (1, 2, 5) and figures (6, 7, 8, 9) with our results beside its rows, as markdown (printed and
written to experiments/results/report/report.md) and the figures as PNG next to it.

Our rows come from the result files under experiments/results/ (eval.py's records, scripts/bench_throughput.py's
throughput files), from files or directories given with --results, or from checkpoints this script evaluates first
(--ckpt; Table 1 = suite table1, which needs the Hugging Face Hub; the other suites run offline):

    python scripts/reproduce_table.py                                   # every table and figure, all results
    python scripts/reproduce_table.py --tables 1 5 --scale 400m
    python scripts/reproduce_table.py --results experiments/results/small --out experiments/results/report/small
    python scripts/reproduce_table.py --ckpt logs/train/runs/.../checkpoints/last.ckpt --suites niah perplexity
    make reproduce-table ARGS="--tables 2 fig7"

Each table and figure is one entry of titans.eval.report.build.ENTRIES.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans.eval.paper_results import TABLE1  # noqa: E402
from titans.eval.report.build import ENTRIES, build_report  # noqa: E402
from titans.eval.report.entry import ReportOptions  # noqa: E402
from titans.eval.report.inputs import read_inputs  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
REPORT = RESULTS / "report"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", nargs="*", default=None,
                        help=f"result files or directories (default: {RESULTS.relative_to(ROOT)}/, the report "
                             f"directory excepted)")
    parser.add_argument("--ckpt", nargs="*", default=[], help="checkpoints to evaluate first (.ckpt or HF dirs)")
    parser.add_argument("--suites", nargs="+", default=["table1", "niah"], help="suites run on each --ckpt")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra eval.py overrides for --ckpt runs, e.g. suite.limit=100")
    parser.add_argument("--scale", default="all", choices=["all", *TABLE1],
                        help="which of the paper's Table 1 blocks to print (default all)")
    parser.add_argument("--tables", nargs="+", default=list(ENTRIES), choices=list(ENTRIES),
                        help="tables and figures to print (default: all)")
    parser.add_argument("--out", default=str(REPORT), help="where report.md and the PNGs go")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def evaluate_checkpoints(ckpts, suites, overrides) -> list[Path]:
    """Run eval.py's pipeline on each checkpoint and suite; a suite that cannot run here is reported and skipped."""
    from hydra import compose, initialize_config_dir

    from titans.errors import HubUnavailableError
    from titans.eval.runner import evaluate_checkpoint

    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
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


def main(argv=None) -> None:
    args = parse_args(argv)
    sources = [Path(p) for p in args.results] if args.results is not None else ([RESULTS] if RESULTS.is_dir() else [])
    if args.ckpt:
        sources += evaluate_checkpoints(args.ckpt, args.suites, args.set)
    inputs = read_inputs(sources, skip_dirs=[args.out])
    markdown, figures = build_report(inputs, args.tables, ReportOptions(table1_scale=args.scale),
                                     None if args.no_write else args.out)
    print(markdown)
    if not args.no_write:
        print(f"Written to {Path(args.out) / 'report.md'}")
        for path in figures:
            print(f"Figure written to {path}")


if __name__ == "__main__":
    main()
