"""The paper's tables and figures at CPU scale: train tiny models on the bundled corpus, evaluate them offline and
fill the same tables (scripts/reproduce_table.py) with rows marked with their scale.

Runs, each ``--lm-steps`` optimizer steps of 8 x 256 tokens (the token budget of scripts/ablate_small.py's corpus
runs, whose checkpoints are reused when its result JSON lists them):

    the LMM and its Table 5 rows   linear_memory, no_momentum, no_weight_decay, no_conv, no_persistent
                                   (configs/recipe/table5/, as ablate_small runs them)
    +Attn rows and Table 1/2 rows  mac, mag, mal, transformer (and, with --rows, swa, deltanet, gated_deltanet, ttt)
    Figure 7                       LMM with memory depth 3 and 4 (depth 1 and 2 are the linear_memory and full rows)
    Figure 6b                      the MAC checkpoint fine-tuned on generated BABILong stories
                                   (experiment=babilong_finetune_tiny_offline)

Every checkpoint is evaluated offline (eval.py, one thread, ``--jobs`` at a time): suite=perplexity on the
validation split (64-1K tokens), suite=niah (passkey, number, uuid at 256-1K tokens), suite=babilong_fewshot_offline
(the benchmark's few-shot prompt; the fine-tuned MAC: suite=babilong_offline). Result files go to --output-dir
(experiments/results/small/), the report to --report-dir (experiments/results/report/, all results there).
Training runs and result files that already exist are reused (--force retrains and re-evaluates).

    python scripts/reproduce_small.py                              # everything (hours of CPU: docs/experiments.md)
    python scripts/reproduce_small.py --rows full mac --lm-steps 4 --eval-scale 0.1 --output-dir /tmp/small
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import ablate_small as ablate  # noqa: E402  (after the repository root is on sys.path)

LMM_ROWS = list(ablate.ROWS)  # full, linear_memory, no_momentum, no_weight_decay, no_conv, no_persistent
OTHER_ROWS = {"mac": ["model=mac"], "mag": ["model=mag"], "mal": ["model=mal"], "transformer": ["model=transformer"],
              "swa": ["model=swa"], "deltanet": ["model=deltanet"], "gated_deltanet": ["model=gated_deltanet"],
              "ttt": ["model=ttt"],
              # depth 3-4 with the smaller initial inner learning rate of configs/recipe/figure7/depth{3,4}.yaml
              "depth3": ["model=lmm", "model.net.memory.depth=3", "model.net.memory.theta_init=0.001"],
              # at the tiny width a depth-4 memory alone exceeds the Transformer++ parameter count: not matched
              "depth4": ["model=lmm", "model.net.memory.depth=4", "model.net.memory.theta_init=0.001",
                         "+model.net.match_params=false"]}
ROWS = LMM_ROWS + list(OTHER_ROWS)
DEFAULT_ROWS = LMM_ROWS + ["mac", "mag", "mal", "transformer", "depth3", "depth4"]
FINETUNE_FROM = "mac"
# relative CPU cost of one training run (tiny-size throughput, experiments/results): the longest start first, so that
# --jobs runs side by side do not end waiting on one long run
TRAIN_COST = {"depth4": 4.0, "depth3": 2.0, "mac": 1.3, "mag": 1.3, "transformer": 0.3}

# suite -> eval.py overrides; counts (samples, tokens) scale with --eval-scale
SUITES = {
    "perplexity": lambda s: ["suite=perplexity", "suite.lengths=[64,128,256,512,1024]",
                             f"suite.n_tokens={max(1024, int(16384 * s) // 1024 * 1024)}", "suite.batch_size=4"],
    "niah": lambda s: ["suite=niah", "suite.lengths=[256,512,1024]", f"suite.depths={max(2, round(3 * s))}",
                       f"suite.samples_per_cell={max(1, round(2 * s))}"],
    "babilong_fewshot_offline": lambda s: ["suite=babilong_fewshot_offline", "suite.lengths=[0,1024,2048]",
                                           f"suite.samples_per_cell={max(1, round(5 * s))}"],
    "babilong_offline": lambda s: ["suite=babilong_offline", "suite.lengths=[0,512,1024]",
                                   f"suite.samples_per_cell={max(1, round(5 * s))}"],
}
PRETRAINED_SUITES = ["perplexity", "niah", "babilong_fewshot_offline"]
FINETUNED_SUITES = ["babilong_offline"]  # Figure 6b: the fine-tuned setting


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=ROWS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--lm-steps", type=int, default=300, help="optimizer steps per run (ablate_small's default)")
    p.add_argument("--finetune-steps", type=int, default=30, help="BABILong fine-tuning steps of the MAC row")
    p.add_argument("--no-finetune", action="store_true", help="skip the BABILong fine-tuning (Figure 6b)")
    p.add_argument("--eval-scale", type=float, default=1.0, help="scales the evaluation's sample and token counts")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate even when results exist")
    p.add_argument("--output-dir", default=str(ROOT / "experiments" / "results" / "small"))
    p.add_argument("--report-dir", default=str(ROOT / "experiments" / "results" / "report"))
    p.add_argument("--ablations-dir", default=str(ROOT / "experiments" / "results" / "ablations"),
                   help="scripts/ablate_small.py's result JSONs, whose corpus runs are reused")
    p.add_argument("--log-dir", default=str(ROOT / "logs" / "reproduce_small"))
    return p.parse_args(argv)


def training_jobs(args) -> list[dict]:
    """One train.py run per (row, seed): ablate_small's corpus jobs for the LMM rows, the same base for the others."""
    lmm = [r for r in args.rows if r in LMM_ROWS]
    jobs = []
    if lmm:
        planned = ablate.plan(ablate.parse_args(["--tasks", "lm", "--rows", *lmm, "--seeds", *map(str, args.seeds),
                                                 "--lm-steps", str(args.lm_steps)]))
        jobs += [dict(row=j["row"], seed=j["seed"], overrides=j["overrides"]) for j in planned]
    for row in (r for r in args.rows if r in OTHER_ROWS):
        for seed in args.seeds:
            jobs.append(dict(row=row, seed=seed, overrides=[
                *OTHER_ROWS[row], "size=tiny", f"trainer.max_steps={args.lm_steps}", "logger=csv",
                f"seed={seed}", "task_name=reproduce_small", "callbacks.progress_bar.refresh_rate=0"]))
    jobs.sort(key=lambda j: -TRAIN_COST.get(j["row"], 1.0))
    for job in jobs:  # a checkpoint at the end also when --lm-steps is below the default interval of 100 steps
        job["overrides"].append(f"callbacks.model_checkpoint.every_n_train_steps={min(100, args.lm_steps)}")
        job["output_dir"] = str(Path(args.log_dir) / f"{job['row']}_s{job['seed']}")
    return jobs


def finetune_jobs(args, trained: dict[tuple, str]) -> list[dict]:
    if args.no_finetune:
        return []
    return [dict(row=f"{FINETUNE_FROM}_babilong_finetuned", seed=seed, overrides=[
        "experiment=babilong_finetune_tiny_offline", f"init_from={trained[(FINETUNE_FROM, seed)]}",
        f"trainer.max_steps={args.finetune_steps}", "logger=csv", f"seed={seed}",
        "callbacks.progress_bar.refresh_rate=0",
        f"callbacks.model_checkpoint.every_n_train_steps={min(15, args.finetune_steps)}",
        f"trainer.val_check_interval={min(15, args.finetune_steps)}"], output_dir=str(Path(args.log_dir) / f"mac_babilong_s{seed}"))
        for seed in args.seeds if (FINETUNE_FROM, seed) in trained]


def reusable_ablation_runs(args) -> dict[tuple, str]:
    """(row, seed) -> checkpoint of ablate_small's corpus runs with this run's token budget."""
    found = {}
    for path in sorted(Path(args.ablations_dir).glob("ablations_*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if int(document.get("args", {}).get("lm_steps", -1)) != args.lm_steps:
            continue
        for result in document.get("results", []):
            ckpt = Path(result.get("output_dir", "")) / "checkpoints" / "last.ckpt"
            if result.get("task") == "lm" and "error" not in result and ckpt.is_file():
                found[(result["row"], result["seed"])] = str(ckpt)
    return found


def train(args, job: dict, reuse: dict[tuple, str]) -> str | None:
    """The checkpoint of ``job``: reused (ablate_small's, or an earlier run of this script) or trained now."""
    from titans.training.jobs import run_train_job

    key = (job["row"], job["seed"])
    own = Path(job["output_dir"]) / "checkpoints" / "last.ckpt"
    if not args.force:
        if key in reuse:
            print(f"[small] {job['row']} seed {job['seed']}: reusing ablate_small's {reuse[key]}", flush=True)
            return reuse[key]
        if own.is_file() and (own.parent.parent / "metrics.json").is_file():
            print(f"[small] {job['row']} seed {job['seed']}: reusing {own}", flush=True)
            return str(own)
    result = run_train_job(job["overrides"], job["output_dir"])
    if "error" in result:
        print(f"[small] {job['row']} seed {job['seed']}: training FAILED\n{result['error'][-1500:]}", flush=True)
        return None
    print(f"[small] {job['row']} seed {job['seed']}: trained in {result['seconds']} s, val/ppl "
          f"{result.get('val/ppl')}", flush=True)
    return str(own)


def evaluate(args, row: str, seed: int, ckpt: str, suite: str) -> Path | None:
    name = f"{suite}_{row}_s{seed}"
    out = Path(args.output_dir) / f"{name}.json"
    if out.is_file() and not args.force and out.stat().st_mtime >= Path(ckpt).stat().st_mtime:
        return out
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "eval.py"), f"ckpt={ckpt}", *SUITES[suite](args.eval_scale),
           f"output_dir={args.output_dir}", f"output_name={name}", "threads=1",
           f"hydra.run.dir={Path(args.log_dir) / 'eval' / name}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"[small] eval {name} FAILED: {(proc.stderr or proc.stdout)[-1500:]}", flush=True)
        return None
    print(f"[small] eval {name}: {out}", flush=True)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    reuse = {} if args.force else reusable_ablation_runs(args)
    jobs = training_jobs(args)
    print(f"[small] {len(jobs)} training runs ({len([j for j in jobs if (j['row'], j['seed']) in reuse])} reused "
          f"from ablate_small), {args.jobs} at a time", flush=True)
    from titans.progress import map_with_progress

    ckpts = map_with_progress(lambda j: train(args, j, reuse), jobs, jobs=args.jobs, desc="train")
    trained = {(j["row"], j["seed"]): c for j, c in zip(jobs, ckpts) if c}
    tuned = finetune_jobs(args, trained)
    tuned_ckpts = map_with_progress(lambda j: train(args, j, {}), tuned, jobs=args.jobs, desc="fine-tune")
    evaluations = [(row, seed, ckpt, suite) for (row, seed), ckpt in trained.items() for suite in PRETRAINED_SUITES]
    evaluations += [(j["row"], j["seed"], c, suite) for j, c in zip(tuned, tuned_ckpts) if c
                    for suite in FINETUNED_SUITES]
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    written = map_with_progress(lambda e: evaluate(args, *e), evaluations, jobs=args.jobs, desc="evaluate")

    from titans.eval.report.build import build_report
    from titans.eval.report.inputs import read_inputs

    # the report of every result (as make reproduce-table writes it), this run's included
    sources = [p for p in (ROOT / "experiments" / "results", Path(args.output_dir)) if p.is_dir()]
    markdown, _ = build_report(read_inputs(sources, skip_dirs=[args.report_dir]), directory=args.report_dir)
    print(markdown)
    print(f"[small] report: {Path(args.report_dir) / 'report.md'}")
    failed = len(jobs) + len(tuned) - len(trained) - sum(1 for c in tuned_ckpts if c) + written.count(None)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
