"""The model card (``README.md``) of a converted model directory, generated from the run's own files.

    card = model_card(model, name="my-model", checkpoint="logs/train/runs/<run>/checkpoints/last.ckpt",
                      results=find_result_files(checkpoint))

What it reads: the model's config (architecture, variant, sizes, memory rule), the training checkpoint (steps, tokens
per step, tokenizer, optimizer), the run directory around it (Hydra's ``.hydra/`` files: the config groups chosen and
the command-line overrides; ``metrics.json``: the final validation metrics) and the result files eval.py wrote for
that checkpoint (``experiments/results/*.json``: suite, date, tables). The commit is that of the code written into
the directory (titans.eval.results.git_commit).
"""

from __future__ import annotations

import json
from pathlib import Path

from titans.eval.results import REPO_ROOT, git_commit, package_version, read_record
from titans.models import SIZES
from titans.models.checkpoint_io import EFFECTIVE_SCHEDULE, load_lightning_checkpoint
from titans.models.variants import BLOCK_TYPES, VARIANTS

RESULTS_DIR = REPO_ROOT / "experiments" / "results"


def variant_description(variant: str) -> str:
    """The card's phrase for a variant (``VariantSpec.description``), or its name if it is not registered."""
    spec = VARIANTS.get(variant)
    return spec.description if spec is not None else variant


def _size_name(config) -> str | None:
    shape = (config.n_layers, config.d_model, config.n_heads)
    return next((name for name, s in SIZES.items() if (s["n_layers"], s["d_model"], s["n_heads"]) == shape), None)


def _read_yaml(path: Path):
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    except Exception:  # noqa: BLE001 - a damaged file of the run: the card leaves its fields out
        return None


def training_summary(checkpoint: str | Path) -> dict:
    """What the card says about training, from the checkpoint and its run directory (missing parts are left out)."""
    checkpoint = Path(checkpoint).resolve()
    ckpt = load_lightning_checkpoint(checkpoint, mmap=True)
    hparams = ckpt["hyper_parameters"]
    steps, per_step = int(ckpt.get("global_step", 0)), hparams.get("tokens_per_step")
    summary = {"checkpoint": checkpoint, "steps": steps, "tokens_per_step": per_step,
               "tokens": steps * per_step if per_step else None, "tokenizer": hparams.get("tokenizer"),
               "optimizer": hparams.get("optimizer"), "scheduler": hparams.get("scheduler"),
               "schedule": ckpt.get(EFFECTIVE_SCHEDULE)}
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    config = _read_yaml(run_dir / ".hydra" / "config.yaml")
    hydra = _read_yaml(run_dir / ".hydra" / "hydra.yaml")
    overrides = _read_yaml(run_dir / ".hydra" / "overrides.yaml")
    if config is not None:
        summary["run_dir"] = run_dir
        summary["task_name"] = config.get("task_name")
        summary["data"] = config.get("data")
    if hydra is not None:
        summary["choices"] = {k: v for k, v in hydra.get("hydra", {}).get("runtime", {}).get("choices", {}).items()
                              if not k.startswith("hydra") and v is not None}
    if overrides is not None:
        summary["overrides"] = overrides
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        summary["metrics"] = json.loads(metrics.read_text(encoding="utf-8"))
    return summary


def find_result_files(checkpoint: str | Path, directory: str | Path = RESULTS_DIR) -> list[Path]:
    """eval.py's result files (``directory/*.json``) of exactly this checkpoint, oldest first."""
    checkpoint, found = str(Path(checkpoint).resolve()), []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            record = read_record(path)
        except (ValueError, OSError):  # not a titans result file (lm-eval's own outputs, figures' metadata)
            continue
        if record["checkpoint"].get("path") == checkpoint:
            found.append((record.get("created_utc") or "", path))
    return [path for _, path in sorted(found)]


def _table(rows: list[tuple[str, object]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows if v not in (None, "", [], {}))])


def _architecture(model) -> str:
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    size = _size_name(config)
    shape = f"{config.n_layers} blocks x {config.d_model} wide x {config.n_heads} heads, SwiGLU {config.ffn_dim}"
    rows = [
        ("architecture", f"{variant_description(config.variant)}; variant `{config.variant}`"),
        ("blocks", ", ".join(config.block_types)),
        ("parameters", f"{n_params:,} ({n_params - n_embed:,} without the input embedding)"),
        ("size", f"`{size}`: {shape}" if size else shape),
        ("vocabulary", f"{config.vocab_size:,}"),
        ("training length", f"{config.max_position_embeddings:,} tokens (`max_position_embeddings`)"),
    ]
    blocks = [BLOCK_TYPES[b] for b in config.block_types if b in BLOCK_TYPES]
    if any(block.uses_segment for block in blocks):
        rows.append(("segment", f"{config.segment_len} tokens"))
    if any(block.uses_window for block in blocks):
        rows.append(("attention window", f"{config.window} tokens"))
    rows.append(("persistent tokens", config.n_persistent))
    memory = config.memory
    if memory is not None:
        rule = [f"depth {memory.depth}", "momentum" if memory.momentum else "no momentum",
                "forgetting" if memory.forget else "no forgetting", f"chunk {memory.chunk_size}",
                f"{memory.num_heads} heads"]
        rows.append(("memory", ", ".join(rule)))
    return _table(rows)


def _training(summary: dict) -> str:
    choices = summary.get("choices") or {}
    data = summary.get("data") or {}
    described = [f"`{key}={value}`" for key, value in choices.items()
                 if key in ("experiment", "model", "size", "data", "tokenizer")]
    tokenizer = summary.get("tokenizer") or {}
    metrics = summary.get("metrics") or {}
    validation = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith("val/") and isinstance(v, float))
    optimizer, scheduler = summary.get("optimizer") or {}, summary.get("scheduler") or {}
    data_text = None
    if data:
        where = str(data.get("data_dir", "")).replace("${paths.data_dir}", "data")
        data_text = ", ".join(x for x in (f"`{data.get('_target_')}`", where and f"`{where}`",
                                          data.get("seq_len") and f"sequences of {data['seq_len']} tokens",
                                          data.get("batch_size") and f"batch {data['batch_size']}") if x)
    tokens = summary.get("tokens")
    rows = [
        ("config", " ".join(described) or None),
        ("overrides", " ".join(f"`{o}`" for o in summary.get("overrides") or []) or "none"),
        ("training data", data_text),
        ("tokenizer", ", ".join(f"{k} {v}" for k, v in tokenizer.items()) or None),
        ("steps", f"{summary['steps']:,}"),
        ("training tokens", f"{tokens:,} ({summary['steps']:,} steps x {summary['tokens_per_step']:,} tokens)"
         if tokens else None),
        ("optimizer", ", ".join(f"{k} {v}" for k, v in optimizer.items()) or None),
        ("schedule", _schedule(scheduler, summary.get("schedule"))),
        ("final validation", f"{validation} (the run's `metrics.json`)" if validation else None),
        ("run", f"`{summary['run_dir'].name}`" if summary.get("run_dir") else None),
    ]
    return _table(rows)


def _schedule(configured: dict, effective: dict | None) -> str | None:
    """The learning-rate schedule as the run used it: the effective warm-up (capped at the run's steps, or derived
    from ``warmup_tokens``) and the decay length, with the configured warm-up where it differs. Checkpoints written
    before train.py recorded the effective schedule show the configured values, marked as such."""
    if not effective:
        text = ", ".join(f"{k} {v}" for k, v in configured.items() if v is not None)
        return f"{text} (as configured)" if text else None
    warmup = f"warmup_steps {effective['warmup_steps']}"
    asked = configured.get("warmup_steps")
    if asked is None and configured.get("warmup_tokens") is not None:
        warmup += f" (from warmup_tokens {configured['warmup_tokens']})"
    elif asked is not None and int(asked) != int(effective["warmup_steps"]):
        warmup += f" (configured {asked}, capped at the run's {effective['total_steps']} steps)"
    return f"{warmup}, cosine decay over {effective['total_steps']} steps to min_lr_ratio {effective['min_lr_ratio']}"


def _lm_eval_table(results: dict) -> str | None:
    """lm-eval's per-task metrics (``results["lm_eval"]``, as eval.py stores them) as a markdown table."""
    tasks = results.get("lm_eval") if isinstance(results, dict) else None
    if not isinstance(tasks, dict) or not tasks:
        return None
    rows = ["| task | metric | value |", "|---|---|---:|"]
    for task, metrics in tasks.items():
        for key, value in (metrics if isinstance(metrics, dict) else {}).items():
            metric, _, filter_name = key.partition(",")
            if filter_name and "stderr" not in metric and isinstance(value, (int, float)):
                rows.append(f"| {task} | {metric} | {value:.4g} |")
    return "\n".join(rows) if len(rows) > 2 else None


def _evaluation(results: list[Path]) -> str:
    if not results:
        return ("No evaluation results were given. Evaluate the checkpoint (`python eval.py ckpt=CHECKPOINT "
                "suite=niah_cpu`, or lm-eval as below) and convert it again to list them here.")
    parts = []
    for path in results:
        record = read_record(path)
        tables = [t for t in (record.get("tables") or {}).values() if t] or [_lm_eval_table(record["results"])]
        body = ("\n\n".join(t for t in tables if t) if any(tables)
                else "```json\n" + json.dumps(record["results"], indent=1)[:3000] + "\n```")
        parts.append(f"### {record['suite']} ({record.get('created_utc', '')}, `{path.name}`)\n\n{body}")
    return "\n\n".join(parts)


def model_card(model, name: str, checkpoint: str | Path | None = None, results: list[Path] | None = None,
               commit: tuple[str | None, bool | None] | None = None) -> str:
    """The README.md of the directory ``name`` (the path its loading examples use) holding ``model`` and its
    tokenizer."""
    config = model.config
    commit, dirty = git_commit() if commit is None else commit
    code = f"titans {package_version()}, commit `{commit}`" if commit else f"titans {package_version()}"
    if dirty:
        code += " with uncommitted changes"
    training = _training(training_summary(checkpoint)) if checkpoint is not None else "Not recorded."
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags:
- titans
- {config.variant}
- custom_code
---

# {Path(name).name}

A {variant_description(config.variant)} language model trained with the titans project, an
implementation of "Titans: Learning to Memorize at Test Time" (Behrouz, Zhong, Mirrokni): a neural long-term memory
that keeps learning at test time, combined with attention. Code: {code}.

## Model

{_architecture(model)}

## Training

{training}

## Evaluation

{_evaluation(list(results or []))}

## How to load it

The directory holds the model's code (`titans_*.py`, generated from the titans package), so only `torch` and
`transformers` are needed:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)  # it reads config.json too
ids = tokenizer("The sky is", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=20, do_sample=False)[0]))
```

`generate()` carries the model's cache: attention keys and values (bounded by the window or the segment) and the
memory's state. Padded batches are refused: generate prompts of equal length, or one at a time.

## How to evaluate it

lm-eval's own `hf` model (with `accelerate` installed):

```bash
lm_eval run --model hf --model_args pretrained={name},trust_remote_code=True,dtype=float32 --tasks piqa
```

It feeds the model at most {config.max_position_embeddings:,} tokens (the training length; `max_length=` in
`--model_args` changes that), cutting contexts on the left, and gives the same log-likelihoods and generations as
the titans package's lm-eval model `titans` (`python -m titans.eval.lm_eval_cli run --model titans --model_args
pretrained={name} ...`). Use `titans` where `hf` cannot go: continuations longer than `max_length` (`hf` refuses
them; `titans` scores them in rolling windows) and batched generation (`hf` left-pads the prompts of a batch, which
the model refuses, so run generation tasks with `--batch_size 1`; `titans` batches prompts of equal length).
"""


def write_model_card(directory: str | Path, model, checkpoint: str | Path | None = None,
                     results: list[Path] | None = None) -> Path:
    directory = Path(directory)
    path = directory / "README.md"
    path.write_text(model_card(model, str(directory), checkpoint, results), encoding="utf-8")
    return path
