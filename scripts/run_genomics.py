"""Pretrain a DNA model, fine-tune it on GenomicBenchmarks tasks and write the Table 4 result file.

    # the paper's setting (needs the hub): pretraining on the human genome, then the five Table 4 tasks
    python scripts/run_genomics.py --pretrain dna_pretrain_lmm --name lmm_tiny
    # offline: a smoke pretraining on generated sequences, then the planted-motif task
    python scripts/run_genomics.py --pretrain dna_pretrain_smoke --tasks planted_motifs --name smoke

Each step is one ``python train.py`` job (one CPU thread); fine-tuning starts from the pretraining run's
``last.ckpt`` (``init_from``). ``--pretrain-set`` / ``--finetune-set`` add overrides (the same model overrides
must go to both, so the weights fit). ``experiments/results/genomics/NAME.json`` holds, per task, the test
top-1 accuracy of the checkpoint with the best validation accuracy, with commands, times and the git commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans.eval.paper_results import TABLE4_TASKS  # noqa: E402
from titans.eval.results import git_commit, package_version  # noqa: E402
from titans.progress import heartbeat, progress  # noqa: E402
from titans.training.jobs import run_train_job  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain", default="dna_pretrain_lmm", help="the pretraining experiment")
    parser.add_argument("--tasks", nargs="+", default=list(TABLE4_TASKS.values()),
                        help="genomics_<task> experiments to fine-tune (default: the five of Table 4)")
    parser.add_argument("--pretrain-set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--finetune-set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", required=True, help="result file name (experiments/results/genomics/NAME.json)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "genomics"))
    parser.add_argument("--log-dir", default=str(ROOT / "logs" / "genomics"))
    return parser.parse_args(argv)


def _step(job: dict, keys: tuple[str, ...]) -> dict:
    entry = {k: job.get(k) for k in ("command", "seconds", "cpu_seconds", "output_dir")}
    if "error" in job:
        entry["error"] = job["error"]
    else:
        entry.update({k: job.get(k) for k in keys if k in job})
    return entry


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    log_dir = Path(args.log_dir) / f"{stamp}_{args.name}"
    bar = progress(desc="genomics", total=1 + len(args.tasks), unit="job")
    print(f"[genomics] {1 + len(args.tasks)} train.py jobs, logs under {log_dir}", file=sys.stderr, flush=True)

    def job(overrides: list[str], name: str) -> dict:
        bar.set_postfix_str(name)
        with heartbeat(bar):
            result = run_train_job(overrides, log_dir / name)
        bar.update()
        status = "FAILED" if "error" in result else f"done in {result['seconds']:.0f} s"
        bar.write(f"[genomics] {name}: {status} ({result['output_dir']})", file=sys.stderr)
        return result

    pretrain = job([f"experiment={args.pretrain}", *args.pretrain_set], "pretrain")
    record = {
        "suite": "genomics", "name": args.name, "pretrain": _step(pretrain, ("val/loss", "global_step")),
        "tasks": {}, "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "titans_version": package_version(), "threads_per_job": 1,
        "command": " ".join(["python scripts/run_genomics.py", *sys.argv[1:]] if argv is None else
                            ["python scripts/run_genomics.py", *argv]),
    }
    record["git_commit"], record["git_dirty"] = git_commit()
    checkpoint = Path(pretrain["output_dir"]) / "checkpoints" / "last.ckpt"
    if "error" in pretrain or not checkpoint.is_file():
        print(f"pretraining failed:\n{pretrain.get('error', 'no last.ckpt')}", file=sys.stderr)
    else:
        for task in args.tasks:
            result = job([f"experiment=genomics_{task}", f"init_from={checkpoint}", *args.finetune_set], task)
            record["tasks"][task] = _step(result, ("test/acc", "best/val/acc", "global_step", "epochs"))
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    failed = [t for t, e in record["tasks"].items() if "error" in e] + (["pretrain"] if "error" in pretrain else [])
    print(", ".join(f"{t}: {e.get('test/acc', float('nan')):.4f}" for t, e in record["tasks"].items()
                    if "error" not in e) + (f" (failed: {', '.join(failed)})" if failed else ""))
    print(f"Results written to {path}")
    print(f"Checkpoints written under {log_dir} (pretraining: {checkpoint})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
