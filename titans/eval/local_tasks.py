"""Write tiny lm-eval tasks (local JSONL, one per output type) that run offline.

lm-eval reads local data with ``dataset_path: json`` and absolute ``data_files`` paths. Used by
the tests and by ``suite=smoke`` to check the whole evaluation path without the hub.
"""

from __future__ import annotations

import json
from pathlib import Path

LOGLIKELIHOOD_DOCS = [
    {"context": "The grass is green. The sky is", "continuation": " blue."},
    {"context": "Mary moved to the bathroom. Where is Mary? In the", "continuation": " bathroom."},
    {"context": "To be, or not to be, that is the", "continuation": " question."},
]
MULTIPLE_CHOICE_DOCS = [
    {"question": "The sun is", "choices": [" yellow.", " a kitchen.", " football."], "label": 0},
    {"question": "John went to the", "choices": [" hallway.", " seven.", " blue sky green."], "label": 0},
    {"question": "Here we go. There and back", "choices": [" once.", " again.", " milk."], "label": 1},
]
ROLLING_DOCS = [
    {"text": "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."},
    {"text": "Now is the winter of our discontent made glorious summer by this sun of York."},
]
GENERATION_DOCS = [
    {"question": "What is the special magic number? Answer:", "answer": "1234567"},
    {"question": "Where is the apple? Answer:", "answer": "kitchen"},
]

TASKS = {
    "titans_local_loglikelihood": (LOGLIKELIHOOD_DOCS, {
        "output_type": "loglikelihood", "doc_to_text": "{{context}}", "doc_to_target": "{{continuation}}",
        "metric_list": [{"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
                        {"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}),
    "titans_local_multiple_choice": (MULTIPLE_CHOICE_DOCS, {
        "output_type": "multiple_choice", "doc_to_text": "{{question}}", "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{label}}", "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]}),
    "titans_local_rolling": (ROLLING_DOCS, {
        "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "{{text}}",
        "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}]}),
    "titans_local_generate": (GENERATION_DOCS, {
        "output_type": "generate_until", "doc_to_text": "{{question}}", "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": 8, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}),
}


def write_local_tasks(directory: str | Path) -> list[str]:
    """Write the JSONL data and YAML task files under ``directory``; return the task names.

    Use with ``lm_eval.tasks.TaskManager(include_path=str(directory))``.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name, (docs, spec) in TASKS.items():
        data_file = directory / f"{name}.jsonl"
        data_file.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
        config = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
                  "test_split": "test", **spec, "metadata": {"version": 1.0}}
        # JSON is valid YAML; lm-eval reads task configs with a YAML loader.
        (directory / f"{name}.yaml").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return list(TASKS)
