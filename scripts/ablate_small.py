"""The paper's Table 5 questions at CPU scale: which parts of the LMM matter?

Rows (each the LMM with one change): deep memory (the default, depth 2) vs linear memory (depth 1), without
momentum (eta = 0), without weight decay (alpha = 0), without the short convolution, without persistent tokens.
Each row is trained on two tasks with the same token budget, for several seeds:

    mqar  ``experiment=mqar_gap`` (8 pairs beyond the 32-token window): validation accuracy;
    lm    the bundled corpus at ``size=tiny`` (``--lm-steps`` optimizer steps of 8 x 256 tokens): validation
          perplexity.

Mean and spread (sample standard deviation) per row go to ``experiments/results/ablations/`` as markdown and JSON.
Jobs run ``--jobs`` at a time with one CPU thread each.

    python scripts/ablate_small.py                                  # 6 rows x 2 tasks x 3 seeds
    python scripts/ablate_small.py --tasks mqar --seeds 0 --rows full no_momentum --mqar-minutes 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# each row's one change is configs/recipe/table5/<row>.yaml, the file the 400M experiments (ablation_lmm_<row>) use
ROWS = {"full": [], **{row: [f"+recipe/table5={row}"] for row in
                       ("linear_memory", "no_momentum", "no_weight_decay", "no_conv", "no_persistent")}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--tasks", nargs="+", default=["mqar", "lm"], choices=["mqar", "lm"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--mqar-steps", type=int, default=1500, help="optimizer steps per MQAR run (same for every row)")
    p.add_argument("--mqar-warmup", type=int, default=None,
                   help="length warm-up steps of the MQAR runs (default: the experiment's, 600)")
    p.add_argument("--mqar-minutes", type=float, default=20.0, help="CPU-time cap per MQAR run (minutes)")
    p.add_argument("--lm-steps", type=int, default=300, help="optimizer steps per corpus run (same for every row)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--output-dir", default=str(ROOT / "experiments" / "results" / "ablations"))
    p.add_argument("--log-dir", default=str(ROOT / "logs"))
    return p.parse_args(argv)


def plan(args) -> list[dict]:
    jobs = []
    for task in args.tasks:
        for row in args.rows:
            for seed in args.seeds:
                if task == "mqar":
                    base = ["experiment=mqar_gap", "model=lmm", f"trainer.max_steps={args.mqar_steps}",
                            f"callbacks.cpu_budget.minutes={args.mqar_minutes}",
                            "callbacks.early_stop.stopping_threshold=1.01"]  # same steps for every row: no early stop
                    if args.mqar_warmup is not None:
                        base.append(f"data.warmup_steps={args.mqar_warmup}")
                else:
                    base = ["model=lmm", "size=tiny", f"trainer.max_steps={args.lm_steps}", "logger=csv"]
                jobs.append(dict(task=task, row=row, seed=seed, overrides=[
                    *base, *ROWS[row], f"seed={seed}", f"task_name=ablate_{task}",
                    "callbacks.progress_bar.refresh_rate=0"]))
    return jobs


def summarise(results: list[dict]) -> dict:
    """{task: {row: (mean, std, n)}} of val/acc (mqar) or val/ppl (lm)."""
    table: dict = {}
    for task, metric in (("mqar", "val/acc"), ("lm", "val/ppl")):
        for row in ROWS:
            values = [r[metric] for r in results if r["task"] == task and r["row"] == row and metric in r]
            if values:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                table.setdefault(task, {})[row] = (statistics.fmean(values), spread, len(values))
    return table


def markdown(table: dict, args) -> str:
    lines = ["| LMM row | MQAR beyond the window: accuracy | bundled corpus: validation ppl |", "|---|---|---|"]
    for row in args.rows:
        cells = []
        for task, fmt in (("mqar", "{:.3f} ± {:.3f} (n={})"), ("lm", "{:.1f} ± {:.1f} (n={})")):
            value = table.get(task, {}).get(row)
            cells.append(fmt.format(*value) if value else "-")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from titans.training.jobs import run_train_job

    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    jobs = plan(args)
    print(f"[ablate] {len(jobs)} runs, {args.jobs} at a time", flush=True)

    def one(job):
        out = Path(args.log_dir) / "ablate_small" / stamp / f"{job['task']}_{job['row']}_s{job['seed']}"
        result = dict(job, **run_train_job(job["overrides"], out))
        status = "FAILED" if "error" in result else {k: result.get(k) for k in ("val/acc", "val/ppl")}
        print(f"[ablate] {job['task']} {job['row']} seed {job['seed']}: {status}", flush=True)
        return result

    from titans.progress import map_with_progress

    results = map_with_progress(one, jobs, jobs=args.jobs, desc="ablate_small")
    table = summarise(results)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    day = dt.date.today().isoformat()
    text = markdown(table, args)
    (out / f"ablations_{day}.md").write_text(text)
    (out / f"ablations_{day}.json").write_text(json.dumps({"date": day, "args": vars(args), "results": results},
                                                          indent=2, default=str) + "\n")
    print(text)
    print(f"Results written to {out / f'ablations_{day}.md'} and {out / f'ablations_{day}.json'}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
