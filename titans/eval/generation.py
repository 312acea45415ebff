"""Greedy decoding shared by the lm-eval adapter and the long-context tasks (S-NIAH, BABILong)."""

from __future__ import annotations

import torch


@torch.no_grad()
def greedy_generate(model, input_ids: torch.Tensor, max_new_tokens: int,
                    eos_token_id: int | None = None) -> list[list[int]]:
    """Greedy continuation of each row of ``input_ids`` [B, T] (no padding: rows have equal length).

    Returns the new tokens of each row, cut before the first EOS. Uses the model's cached
    ``generate`` (GenerationMixin) when it has one, else recomputes the full forward each step.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, time], got shape {tuple(input_ids.shape)}")
    if input_ids.shape[1] == 0:
        raise ValueError("greedy_generate got an empty prompt (no tokens): give at least one token per row")
    if max_new_tokens <= 0:
        return [[] for _ in range(input_ids.shape[0])]
    if hasattr(model, "generate"):
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos_token_id,
            pad_token_id=eos_token_id if eos_token_id is not None else 0,
        )
        new = output[:, input_ids.shape[1] :]
    else:
        sequence = input_ids
        for _ in range(max_new_tokens):
            logits = model(input_ids=sequence).logits[:, -1]
            sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], dim=1)
        new = sequence[:, input_ids.shape[1] :]
    rows = []
    for row in new.tolist():
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id)]
        rows.append(row)
    return rows


def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int | list[int], batch_size: int = 1,
                     add_bos: bool = False, progress_desc: str | None = None) -> list[str]:
    """Greedy completions of ``prompts``; prompts of equal token length share a batch. ``progress_desc``: show a
    progress bar (stderr) under that name."""
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    encoded = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if add_bos and tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id] + ids
        encoded.append(ids)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault((len(ids), budgets[i]), []).append(i)
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(prompts)
    from titans.progress import progress

    with progress(desc=progress_desc or "generate", total=len(prompts), unit="sample",
                  enabled=progress_desc is not None) as bar:
        for (_, budget), indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.tensor([encoded[i] for i in chunk], dtype=torch.long, device=device)
                for i, tokens in zip(chunk, greedy_generate(model, batch, budget, tokenizer.eos_token_id)):
                    outputs[i] = tokenizer.decode(tokens, skip_special_tokens=True)
                bar.update(len(chunk))
    return outputs
