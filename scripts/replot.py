"""Redraw the figures of eval.py result files from the files alone (no model, seconds).

    python scripts/replot.py                                   # every result file under experiments/results/
    python scripts/replot.py experiments/results/small/niah_mac_s0.json

For each result file of an S-NIAH, BABILong or perplexity suite, the figure eval.py drew (titans/eval/plots.py)
is drawn again from the samples / numbers the file holds, next to the file, under the name eval.py gave it; for a
scripts/bench_throughput.py record, its throughput plot (the file's name with .png). Other files (lm-eval suites,
sweeps, reports) are skipped. Prints the path of each figure written. (scripts/demo_recall.py --from-json and
scripts/reproduce_table.py redraw their own figures.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUFFIX = {"niah": "_niah_heatmap.png", "babilong": "_babilong.png", "perplexity": "_perplexity.png"}


def replot(path: Path) -> Path | None:
    """Redraw the figure of one result file; None when it has none that can be redrawn."""
    from titans.eval.plots import babilong_plot, niah_heatmap, perplexity_plot, throughput_plot

    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("kind") == "throughput" and record.get("results"):
        return throughput_plot(record, path.with_suffix(".png"))
    suite = (record.get("config") or {}).get("suite") or {}
    kind, results = suite.get("kind"), record.get("results") or {}
    if kind not in SUFFIX:
        return None
    # eval.py names the figure <run name><suffix>; the run name is the result file's stem
    names = [Path(f).name for f in record.get("figures") or [] if str(f).endswith(SUFFIX[kind])]
    out = path.parent / (names[0] if names else f"{path.stem}{SUFFIX[kind]}")
    title = out.name[: -len(SUFFIX[kind])]
    if kind == "niah" and results.get("samples"):
        return niah_heatmap(results["samples"], out, title=title)
    if kind == "babilong" and results.get("samples"):
        return babilong_plot(results["samples"], out, title=title)
    if kind == "perplexity" and results.get("by_length"):
        return perplexity_plot(results, out, title=title)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="result JSON files (default: experiments/results/**)")
    args = parser.parse_args(argv)
    files = args.files or sorted((ROOT / "experiments" / "results").rglob("*.json"))
    written = [p for p in map(replot, files) if p is not None]
    for path in written:
        print(f"Figure written to {path}")
    if args.files and len(written) < len(args.files):
        print(f"{len(args.files) - len(written)} file(s) hold no figure to redraw", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
