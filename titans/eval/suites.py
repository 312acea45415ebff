"""Evaluation suites (configs/suite/*.yaml): what to run on a loaded model, and how to report it.

Each suite config has a ``kind``:
- ``lm_eval``: lm-eval tasks through the ``titans`` model class (``table1`` adds the paper's Table 1 row);
- ``niah``: generated S-NIAH samples, exact-match table (task x length) and depth x length heatmap;
- ``babilong``: the hub benchmark (``source: hub``) or generated stories (``source: offline``), with the
  fine-tuned setting's prompt or the benchmark's few-shot prompt (``prompt: finetuned | few_shot``),
  task x length table and plot;
- ``perplexity``: held-out text scored in windows of several lengths, perplexity by length and by position
  (the paper's Figure 7), table and plot.
``run_suite`` returns ``(results, tables, figures)`` for the result file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from titans.hub import require_hub

KINDS = ("lm_eval", "niah", "babilong", "perplexity")


def check_requirements(suite: dict) -> None:
    """Fail before loading any model when the suite needs the hub and it is not reachable."""
    kind = suite.get("kind")
    if kind not in KINDS:
        raise ValueError(f"suite.kind must be one of {KINDS}, got {kind!r}")
    if kind == "lm_eval" and suite.get("needs_hub", True):
        require_hub(f"suite={suite.get('name')} (lm-eval tasks {', '.join(suite.get('tasks', []))})",
                    "suite=smoke (tiny local lm-eval tasks), suite=niah or suite=babilong_offline")
    if kind == "babilong" and suite.get("source", "hub") == "hub":
        require_hub(f"suite={suite.get('name')} (RMT-team/babilong)", "suite=babilong_offline")


def run_suite(suite: dict, model, tokenizer, output_dir: str | Path, run_name: str) -> tuple[dict, dict, list[str]]:
    check_requirements(suite)
    runner = {"lm_eval": _run_lm_eval, "niah": _run_niah, "babilong": _run_babilong,
              "perplexity": _run_perplexity}[suite["kind"]]
    return runner(suite, model, tokenizer, Path(output_dir), run_name)


def _run_lm_eval(suite, model, tokenizer, output_dir, run_name):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from titans.eval.lm_adapter import TitansLM
    from titans.eval.local_tasks import write_local_tasks
    from titans.eval.table1 import markdown_table1, table1_row

    lm = TitansLM(pretrained=model, tokenizer=tokenizer, batch_size=suite.get("batch_size", 8),
                  max_length=suite.get("max_length"), max_gen_toks=suite.get("max_gen_toks", 256),
                  device=str(next(model.parameters()).device))
    tasks = list(suite.get("tasks") or [])
    only_local = not tasks  # skip indexing lm-eval's built-in tasks (seconds) when none is used
    with tempfile.TemporaryDirectory(prefix="titans-lm-eval-") as local_dir:
        include = None
        if suite.get("local_tasks"):
            tasks += write_local_tasks(local_dir)
            include = local_dir
        if not tasks:
            raise ValueError(f"suite {suite.get('name')}: no tasks given (suite.tasks or suite.local_tasks=true)")
        task_manager = TaskManager(include_path=include, include_defaults=not only_local)
        output = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=suite.get("num_fewshot"),
                                         limit=suite.get("limit"), bootstrap_iters=suite.get("bootstrap_iters", 0),
                                         log_samples=False, task_manager=task_manager,
                                         random_seed=suite.get("seed", 0), numpy_random_seed=suite.get("seed", 0),
                                         torch_random_seed=suite.get("seed", 0),
                                         fewshot_random_seed=suite.get("seed", 0))
    results = {"lm_eval": output["results"], "n_samples": output.get("n-samples"),
               "versions": output.get("versions")}
    tables = {}
    if suite.get("table1"):
        row = table1_row(output["results"])
        results["table1"] = row
        tables["table1"] = markdown_table1({run_name: row})
    return results, tables, []


def _haystack(suite):
    from titans.tasks.haystack import Haystack, load_haystack_text

    return Haystack(load_haystack_text(suite.get("haystack_path")))


def _run_niah(suite, model, tokenizer, output_dir, run_name):
    from titans.eval.long_context import evaluate_niah, markdown_table, mean_by
    from titans.tasks.niah import TASKS, default_depths, make_niah_dataset, resolve_task
    from titans.eval.plots import niah_heatmap

    tasks = [resolve_task(t) for t in suite.get("tasks", list(TASKS))]
    depths = suite.get("depths", 11)
    depths = default_depths(depths) if isinstance(depths, int) else [float(d) for d in depths]
    needs_essays = any(TASKS[t]["haystack"] == "essay" for t in tasks)
    haystack = _haystack(suite) if needs_essays else None
    rows = []
    for task in tasks:
        samples = make_niah_dataset(task, tokenizer, suite["lengths"], depths, suite.get("samples_per_cell", 1),
                                    suite.get("seed", 0), haystack, suite.get("value_type"))
        rows += evaluate_niah(model, tokenizer, samples, batch_size=suite.get("batch_size", 1),
                              progress_desc=f"S-NIAH {task}")
    figure = niah_heatmap(rows, output_dir / f"{run_name}_niah_heatmap.png", title=run_name)
    tables = {"exact_match": markdown_table(rows, "exact_match"), "contains": markdown_table(rows, "contains")}
    summary = {f"{task}/{length}": acc for (task, length), acc in mean_by(rows, ("task", "context_length"),
                                                                        "exact_match").items()}
    return {"exact_match": summary, "samples": rows}, tables, [str(figure)]


def _run_babilong(suite, model, tokenizer, output_dir, run_name):
    from titans.eval.babilong import load_babilong_hub
    from titans.eval.long_context import evaluate_babilong, markdown_table, mean_by
    from titans.eval.plots import babilong_plot
    from titans.tasks.babilong import make_babilong_dataset

    style = suite.get("prompt", "finetuned")
    if suite.get("source", "hub") == "hub":
        samples = [s for task in suite["tasks"] for length in suite["lengths"]
                   for s in load_babilong_hub(task, str(length), suite.get("limit"), suite.get("dataset", "full"),
                                              style)]
    else:
        haystack = _haystack(suite) if any(int(n) > 0 for n in suite["lengths"]) else None
        samples = make_babilong_dataset(suite["tasks"], tokenizer, suite["lengths"], suite.get("samples_per_cell", 10),
                                        suite.get("seed", 0), haystack, prompt_style=style)
    rows = evaluate_babilong(model, tokenizer, samples, batch_size=suite.get("batch_size", 1),
                             max_new_tokens=suite.get("max_new_tokens", 8))
    figure = babilong_plot(rows, output_dir / f"{run_name}_babilong.png", title=run_name)
    cells = mean_by(rows, ("task", "context_length"), "acc")
    summary = {f"{task}/{length}": acc for (task, length), acc in cells.items()}
    return ({"acc": summary, "prompt": style, "samples": rows}, {"acc": markdown_table(rows, "acc")},
            [str(figure)])


def _run_perplexity(suite, model, tokenizer, output_dir, run_name):
    from titans.eval.perplexity import evaluate_perplexity, load_eval_tokens, markdown_perplexity
    from titans.eval.plots import perplexity_plot

    tokens = load_eval_tokens(tokenizer, suite.get("text_path"))
    results = evaluate_perplexity(model, tokens, suite["lengths"], int(suite["n_tokens"]),
                                  n_buckets=suite.get("position_buckets", 8), batch_size=suite.get("batch_size", 1))
    figure = perplexity_plot(results, output_dir / f"{run_name}_perplexity.png", title=run_name)
    return results, {"perplexity": markdown_perplexity(results)}, [str(figure)]
