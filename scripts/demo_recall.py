"""Associative recall on a CPU: which models can answer when the key-value pairs are beyond the attention span?

Runs ``train.py experiment=mqar_gap`` (titans/data/mqar.py) for every variant in two settings and writes a
table, a JSON file and a plot to ``experiments/results/recall/``:

    within  the queries follow the pairs at once (sequence 1 + 4 * pairs): everything is inside the 32-token
            attention window / MAC segment, so attention alone can answer;
    beyond  ``--gap`` filler tokens (default 64) separate the pairs from the queries: only a long-term memory
            can carry the pairs to them.

and, for ``--pairs-variants``, accuracy against the number of pairs in the ``beyond`` setting.

Each run trains until its validation accuracy reaches ``--stop-at`` or it has used its ``--minutes`` of CPU time
(user + system; the same budget on an idle machine and on a shared one), whichever comes first, and reports the
accuracy of the model it ends with (1024 held-out sequences). Runs go ``--jobs`` at a time with one CPU thread each
(on 2 cores two single-threaded runs beat one two-threaded run).

    python scripts/demo_recall.py                         # the full sweep (make demo-recall)
    python scripts/demo_recall.py --variants lmm swa --settings beyond --minutes 2   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["transformer", "swa", "lmm", "mac", "mag", "mal", "deltanet", "gated_deltanet", "ttt"]
WINDOW = 32  # configs/experiment/mqar_gap.yaml: window and segment_len
# At width 64 the MAC and MAG mixers alone hold more weights than a whole Transformer++ block, so their SwiGLU
# cannot absorb the difference (build_causal_lm's parameter matching): they keep the default SwiGLU width.
VARIANT_OVERRIDES = {"mac": ["+model.net.match_params=false"], "mag": ["+model.net.match_params=false"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=VARIANTS)
    p.add_argument("--settings", nargs="+", default=["within", "beyond"], choices=["within", "beyond"])
    p.add_argument("--pairs", type=int, default=8, help="key-value pairs per sequence (default 8)")
    p.add_argument("--gap", type=int, default=64, help="filler tokens of the beyond setting (default 64)")
    p.add_argument("--pairs-sweep", type=int, nargs="*", default=[4, 16, 32],
                   help="extra numbers of pairs for the accuracy-vs-pairs curve (beyond setting; with --pairs, "
                        "default 4, 8, 16, 32: four points)")
    p.add_argument("--pairs-variants", nargs="*", default=["swa", "lmm", "mac", "gated_deltanet"])
    p.add_argument("--minutes", type=float, default=20.0, help="CPU-time budget per run in minutes (default 20)")
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--stop-at", type=float, default=0.99, help="stop a run once val/acc reaches this")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default=str(ROOT / "experiments" / "results" / "recall"))
    p.add_argument("--log-dir", default=str(ROOT / "logs"))
    p.add_argument("--override", nargs="*", default=[], help="extra train.py overrides for every run")
    p.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                   help="train nothing: write the table and plot from these result files (later files win per run)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other runs of today's results file (re-running some variants)")
    return p.parse_args(argv)


def seq_len_for(pairs: int, gap: int) -> int:
    need = 1 + 4 * pairs + gap
    return need if gap == 0 else max(128, -(-need // 16) * 16)


def plan(args) -> list[dict]:
    runs = []
    for setting in args.settings:
        gap = 0 if setting == "within" else args.gap
        for variant in args.variants:
            runs.append(dict(variant=variant, setting=setting, pairs=args.pairs, gap=gap))
    if "beyond" in args.settings:
        for pairs in args.pairs_sweep:
            for variant in args.pairs_variants:
                runs.append(dict(variant=variant, setting="beyond", pairs=pairs, gap=args.gap))
    for run in runs:
        run["seq_len"] = seq_len_for(run["pairs"], run["gap"])
        run["name"] = f"{run['variant']}_{run['setting']}_p{run['pairs']}"
    return runs


def train_one(run: dict, args, stamp: str) -> dict:
    from titans.training.jobs import run_train_job

    out = Path(args.log_dir) / "mqar_gap" / "demo_recall" / stamp / run["name"]
    overrides = [
        "experiment=mqar_gap", f"model={run['variant']}", f"seed={args.seed}",
        f"data.num_pairs={run['pairs']}", f"data.gap={run['gap']}", f"data.seq_len={run['seq_len']}",
        f"trainer.max_steps={args.max_steps}", f"callbacks.cpu_budget.minutes={args.minutes}",
        f"callbacks.early_stop.stopping_threshold={args.stop_at}",
        "callbacks.progress_bar.refresh_rate=0", *VARIANT_OVERRIDES.get(run["variant"], []), *args.override,
    ]
    job = run_train_job(overrides, out)
    result = dict(run, seconds=job["seconds"], cpu_seconds=job.get("cpu_seconds"), output_dir=job["output_dir"],
                  command=job["command"])
    if "error" in job:
        result["error"] = job["error"]
        print(f"[demo-recall] {run['name']}: FAILED (see {out})", flush=True)
        return result
    result.update(accuracy=job.get("val/acc"), steps=job.get("global_step"), val_loss=job.get("val/loss"))
    print(f"[demo-recall] {run['name']}: accuracy {result['accuracy']:.3f} after {result['steps']} steps "
          f"({result['cpu_seconds']:.0f} CPU s, {result['seconds']:.0f} s wall)", flush=True)
    return result


def markdown(results: list[dict], args, chance: float) -> str:
    main = [r for r in results if r["pairs"] == args.pairs]
    lines = [f"MQAR, {args.pairs} pairs, 2 blocks x width 64, window/segment {WINDOW}; accuracy on 1024 held-out "
             f"sequences (chance {chance:.3f}); each run trains on one CPU thread until accuracy {args.stop_at} or "
             f"its CPU-time budget (steps and CPU minutes used: within/beyond).", "",
             "| variant | " + " | ".join(f"{s} (gap {0 if s == 'within' else args.gap})" for s in args.settings)
             + " | steps | CPU minutes |",
             "|---|" + "---|" * (len(args.settings) + 2)]
    for variant in args.variants:
        row = {r["setting"]: r for r in main if r["variant"] == variant}
        cells = [_acc(row.get(s)) for s in args.settings]
        steps = "/".join(str(row[s].get("steps", "-")) for s in args.settings if s in row)
        minutes = "/".join(f"{_cpu_minutes(row[s])}" for s in args.settings if s in row)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {steps} | {minutes} |")
    sweep = sorted({r["pairs"] for r in results if r["setting"] == "beyond"})
    if len(sweep) > 1:
        lines += ["", f"Accuracy vs number of pairs (gap {args.gap}):", "",
                  "| variant | " + " | ".join(f"{p} pairs" for p in sweep) + " |", "|---|" + "---|" * len(sweep)]
        for variant in args.pairs_variants:
            row = {r["pairs"]: r for r in results if r["setting"] == "beyond" and r["variant"] == variant}
            lines.append(f"| {variant} | " + " | ".join(_acc(row.get(p)) for p in sweep) + " |")
    return "\n".join(lines) + "\n"


def _cpu_minutes(result: dict) -> str:
    seconds = result.get("cpu_seconds")
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _acc(result: dict | None) -> str:
    if result is None:
        return "-"
    return "failed" if result.get("accuracy") is None else f"{result['accuracy']:.3f}"


def plot(results: list[dict], args, chance: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from titans.eval.plots import MARKERS, legend_outside

    sweep = bool(args.pairs_variants)  # the accuracy-vs-pairs panel, when there is a curve to draw
    fig, axes = plt.subplots(1, 2 if sweep else 1, figsize=(13 if sweep else 8.7, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1] if sweep else [1]}, layout="constrained")
    axes = axes[0]
    main = [r for r in results if r["pairs"] == args.pairs]
    width = 0.8 / max(1, len(args.settings))
    for i, setting in enumerate(args.settings):
        accs = [next((r.get("accuracy") or 0.0 for r in main if r["variant"] == v and r["setting"] == setting), 0.0)
                for v in args.variants]
        axes[0].bar([x + i * width for x in range(len(args.variants))], accs, width,
                    label=f"{setting} the window (gap {0 if setting == 'within' else args.gap})")
    axes[0].axhline(chance, color="grey", linestyle=":", label="chance")
    axes[0].set_xticks([x + width * (len(args.settings) - 1) / 2 for x in range(len(args.variants))])
    axes[0].set_xticklabels(args.variants, rotation=30)
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[0].legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    axes[0].set_title(f"MQAR, {args.pairs} pairs, window/segment {WINDOW}", pad=24)
    if not sweep:
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return
    pairs = set()
    for k, variant in enumerate(args.pairs_variants):
        pts = sorted((r["pairs"], r.get("accuracy") or 0.0) for r in results
                     if r["setting"] == "beyond" and r["variant"] == variant)
        if pts:
            axes[1].plot(*zip(*pts), marker=MARKERS[k % len(MARKERS)], label=variant)
            pairs.update(p for p, _ in pts)
    axes[1].axhline(chance, color="grey", linestyle=":", label="chance")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xticks(sorted(pairs), [str(p) for p in sorted(pairs)])
    axes[1].set_xlabel("key-value pairs")
    axes[1].set_ylabel("accuracy")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title(f"pairs beyond the window (gap {args.gap})")
    legend_outside(axes[1])
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from titans.data.mqar import MQARSpec

    chance = MQARSpec().chance  # num_keys of configs/data/mqar.yaml (64)
    day = dt.date.today().isoformat()
    if args.from_json:
        by_name = {}
        for file in args.from_json:
            loaded = json.loads(Path(file).read_text())
            day = loaded.get("date", day)  # redrawn files keep the date of the runs (the last file's)
            for result in loaded["results"]:
                by_name[result["name"]] = result
        results = list(by_name.values())
        args.merge = False
        args.variants = [v for v in VARIANTS if any(r["variant"] == v and r["pairs"] == args.pairs for r in results)]
        args.pairs_variants = [v for v in VARIANTS if any(r["variant"] == v and r["pairs"] != args.pairs
                                                          for r in results)]
        args.settings = [s for s in ("within", "beyond") if any(r["setting"] == s for r in results)]
    else:
        runs = plan(args)
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        print(f"[demo-recall] {len(runs)} runs, {args.jobs} at a time, up to {args.minutes:g} CPU minutes each "
              f"(at most {len(runs) * args.minutes / args.jobs:.0f} minutes on {args.jobs} free cores)", flush=True)
        from titans.progress import map_with_progress

        results = map_with_progress(lambda r: train_one(r, args, stamp), runs, jobs=args.jobs, desc="demo_recall")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / f"mqar_{day}.json"
    if args.merge and previous.is_file():
        fresh = {r["name"] for r in results}
        kept = [r for r in json.loads(previous.read_text())["results"] if r["name"] not in fresh]
        results = kept + results
        main_seen = {r["variant"] for r in results if r["pairs"] == args.pairs}
        sweep_seen = {r["variant"] for r in results if r["pairs"] != args.pairs}
        args.variants = [v for v in VARIANTS if v in main_seen]
        args.pairs_variants = [v for v in VARIANTS if v in sweep_seen]
        args.settings = [s for s in ("within", "beyond") if any(r["setting"] == s for r in results)]
    table = markdown(results, args, chance)
    written = [out / f"mqar_{day}.md", out / f"mqar_{day}.png"]
    written[0].write_text(table)
    record = out / f"mqar_{day}.json"
    if not any(record.resolve() == Path(f).resolve() for f in args.from_json or []):  # never overwrite a source
        record.write_text(json.dumps({"date": day, "args": vars(args), "chance": chance, "results": results},
                                     indent=2) + "\n")
        written.insert(1, record)
    plot(results, args, chance, written[-1])
    sweep = sorted({r["pairs"] for r in results if r["setting"] == "beyond"})
    if len(sweep) < 4:
        print(f"[demo-recall] note: the accuracy-vs-pairs curve has {len(sweep)} point(s) ({sweep}); the default "
              f"sweep gives 4", file=sys.stderr)
    print(table)
    for path in written:
        print(f"Written to {path}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
