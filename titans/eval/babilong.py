"""The BABILong benchmark itself (RMT-team/babilong, qa1-qa5, one config per length split 0k..1M), for
``suite=babilong`` (the fine-tuned setting's prompt) and ``suite=babilong_fewshot`` (the benchmark's few-shot prompt).
Needs the Hugging Face Hub and fails fast offline; ``suite=babilong_offline`` and ``suite=babilong_fewshot_offline``
evaluate the generated stories of titans.tasks.babilong instead."""

from __future__ import annotations

from titans.hub import require_hub
from titans.tasks.babilong import BabilongSample, sample_from_hub_row

HUB_TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")
HUB_LENGTHS = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k", "256k", "512k", "1M")
HUB_DATASETS = {"full": "RMT-team/babilong", "1k-samples": "RMT-team/babilong-1k-samples"}


def load_babilong_hub(task: str, length: str, limit: int | None = None, source: str = "full",
                      prompt_style: str = "finetuned") -> list[BabilongSample]:
    """Samples of the real benchmark (RMT-team/babilong, config=length split, split=task), with the prompt of
    ``prompt_style`` (finetuned | few_shot: titans.tasks.babilong.format_prompt)."""
    if task not in HUB_TASKS:
        raise ValueError(f"BABILong task must be one of {HUB_TASKS}, got {task!r}")
    if length not in HUB_LENGTHS:
        raise ValueError(f"BABILong length split must be one of {HUB_LENGTHS}, got {length!r}")
    require_hub(f"BABILong ({HUB_DATASETS[source]}, {length}/{task})",
                "suite=babilong_offline (generated bAbI qa1-qa3 stories in bundled text)")
    import datasets

    rows = datasets.load_dataset(HUB_DATASETS[source], name=length, split=task)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return [sample_from_hub_row(row, task, length, i, prompt_style) for i, row in enumerate(rows)]

