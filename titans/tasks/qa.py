"""A long-context question-answer sample (S-NIAH, BABILong) as a training example, Hugging Face convention."""

from __future__ import annotations

from titans.models.loss import IGNORE_INDEX


def qa_training_example(prompt: str, answer: str, tokenizer, add_eos: bool = False) -> dict[str, list[int]]:
    """``input_ids`` = tokens(prompt) + tokens(" " + answer) [+ EOS]; ``labels`` are IGNORE_INDEX except on the
    answer (aligned with input_ids: the model shifts them), so the loss is the answer's cross-entropy only.
    Tokenizing the prompt and the answer separately matches evaluation, where generation continues from
    tokens(prompt)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
    if add_eos:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids}
