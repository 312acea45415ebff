"""BABILong's few-shot setting (Figure 6a): the benchmark's prompt around our generated stories and the hub's rows,
and suite=babilong_fewshot_offline end to end."""

from __future__ import annotations

import pytest

from eval_helpers import ESSAY, evaluate, tiny_tokenizer
from titans.eval.metrics import BABILONG_TASK_LABELS, babilong_correct
from titans.tasks.babilong import format_prompt, make_babilong_sample, sample_from_hub_row
from titans.tasks.babilong_prompts import FEW_SHOT_PROMPTS, few_shot_prompt
from titans.tasks.haystack import Haystack


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_the_few_shot_prompt_is_the_benchmarks_layout():
    assert sorted(FEW_SHOT_PROMPTS) == ["qa1", "qa2", "qa3", "qa4", "qa5"]
    prompt = few_shot_prompt("qa1", "Mary went to the garden.", "Where is Mary?")
    parts = FEW_SHOT_PROMPTS["qa1"]
    assert prompt == (f"{parts['instruction']}\n{parts['examples']}\n{parts['post_prompt']}\n"
                      f"<context>\nMary went to the garden.\n</context>\nQuestion: Where is Mary?")
    assert prompt.count("<example>") == 2 and prompt.count("</example>") == 2
    for task, parts in FEW_SHOT_PROMPTS.items():
        assert "Answer:" in parts["examples"] and parts["instruction"] and parts["post_prompt"], task
    with pytest.raises(ValueError, match="few-shot prompts exist for"):
        few_shot_prompt("qa7", "c", "q")
    with pytest.raises(ValueError, match="prompt style must be one of"):
        format_prompt("qa1", "c", "q", "zero_shot")
    # the benchmark's answer format is scored by its answer-word rule
    assert babilong_correct("kitchen", "The most recent location of Mary is kitchen.", "Where is Mary?",
                            BABILONG_TASK_LABELS["qa1"])


@pytest.mark.parametrize("task", ["qa1", "qa2", "qa3"])
def test_offline_few_shot_sample_hides_the_same_story(task, tokenizer):
    haystack = Haystack(ESSAY)
    few = make_babilong_sample(task, tokenizer, 1024, index=2, seed=5, haystack=haystack, prompt_style="few_shot")
    assert few == make_babilong_sample(task, tokenizer, 1024, index=2, seed=5, haystack=haystack,
                                       prompt_style="few_shot")
    tuned = make_babilong_sample(task, tokenizer, 1024, index=2, seed=5, haystack=haystack)
    assert (few.facts, few.question, few.answer) == (tuned.facts, tuned.question, tuned.answer)
    assert few.prompt.startswith(FEW_SHOT_PROMPTS[task]["instruction"])
    assert few.prompt.endswith(f"</context>\nQuestion: {few.question}")
    assert 1024 - 60 < few.n_tokens <= 1024
    for fact, start in zip(few.facts, few.fact_char_starts):  # the facts sit inside <context>, in order
        assert few.prompt.index("<context>\n") < few.prompt.find(fact) and fact in few.prompt
    bare = make_babilong_sample(task, tokenizer, 0, index=2, seed=5, prompt_style="few_shot")
    assert f"<context>\n{' '.join(bare.facts)}\n</context>" in bare.prompt


def test_hub_rows_take_either_prompt():
    row = {"input": "  Daniel went to the office. ", "question": "Where is Daniel?", "target": "office"}
    tuned = sample_from_hub_row(row, "qa1", "2k", 0)
    assert tuned.prompt == "Daniel went to the office.\nQuestion: Where is Daniel?\nAnswer:"
    few = sample_from_hub_row(row, "qa1", "2k", 0, prompt_style="few_shot")
    assert few.prompt == few_shot_prompt("qa1", "Daniel went to the office.", "Where is Daniel?")
    assert few.context_length == 2048 and few.answer == "office"


def test_few_shot_offline_suite_end_to_end(tmp_path):
    import torch

    from titans.data import build_tokenizer
    from titans.eval.results import read_record
    from titans.models import build_causal_lm
    from titans.training.lit_module import LitCausalLM

    tokenizer = build_tokenizer(kind="bytes")
    net = build_causal_lm("transformer", "tiny", vocab_size=len(tokenizer), n_layers=1, d_model=32, n_heads=2,
                          max_position_embeddings=4096)
    lit = LitCausalLM(net=net, optimizer=dict(lr=1e-3), scheduler=dict(warmup_steps=1),
                      tokenizer=tokenizer.titans_config)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams)}, ckpt)
    path = evaluate([f"ckpt={ckpt}", "suite=babilong_fewshot_offline", "suite.tasks=[qa1]", "suite.lengths=[0]",
                      "suite.samples_per_cell=2", "suite.max_new_tokens=2", f"output_dir={tmp_path}"])
    record = read_record(path)
    assert record["suite"] == "babilong_fewshot_offline" and record["results"]["prompt"] == "few_shot"
    assert set(record["results"]["acc"]) == {"qa1/0"}
    assert all(s["question"].startswith("Where is") for s in record["results"]["samples"])
