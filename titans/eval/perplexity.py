"""Perplexity by sequence length and by position: the y-axis of the paper's Figure 7 (deep memory), for
``suite=perplexity``.

The paper plots perplexity against sequence length for memories of depth 1-4 and says nothing more about the
protocol. We measure two readings of it on the same held-out tokens:

- ``by_length[L]``: the text cut into windows of L tokens, each scored from its own start (every window begins
  with an empty memory), perplexity over all of their next-token targets. Every L scores the same tokens (the
  first ``n_tokens`` of the stream), so the lengths differ only in how much context each token sees;
- ``by_position[(a, b)]``: the longest windows only, perplexity of the targets at positions a <= t < b: how the
  loss falls as the memory fills.

``token_nll`` is the one computation behind both: next-token negative log-likelihood per position (float32, or
float64 for a float64 model). For a Titans model it runs the LM head in chunks of positions, so no
``[T, vocab]`` logits exist at once; any other causal LM is scored through its logits.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from titans.models.loss import next_token_targets


@torch.no_grad()
def token_nll(model, input_ids: torch.LongTensor, chunk_size: int = 1024) -> torch.Tensor:
    """Negative log-likelihood of each next token: ``[B, T - 1]``, entry t = -log p(x_{t+1} | x_{<=t})."""
    input_ids = input_ids.to(next(model.parameters()).device)
    head = getattr(model, "lm_head", None)
    backbone = getattr(model, "model", None)
    if head is not None and backbone is not None and hasattr(model, "supervised_logits"):
        hidden, targets = next_token_targets(backbone(input_ids=input_ids).last_hidden_state, input_ids)
        work = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        pieces = [F.cross_entropy(head(h).to(work).transpose(1, 2), y, reduction="none")
                  for h, y in zip(hidden.split(chunk_size, dim=1), targets.split(chunk_size, dim=1))]
        return torch.cat(pieces, dim=1)
    logits, targets = next_token_targets(model(input_ids=input_ids).logits, input_ids)
    work = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return F.cross_entropy(logits.to(work).transpose(1, 2), targets, reduction="none")


def windows(tokens: torch.Tensor, length: int, n_tokens: int) -> torch.Tensor:
    """The first ``n_tokens`` of a 1-D token stream as ``[n_tokens // length, length]`` windows."""
    if n_tokens % length:
        raise ValueError(f"n_tokens={n_tokens} is not a multiple of the window length {length}")
    if tokens.numel() < n_tokens:
        raise ValueError(f"the text has {tokens.numel()} tokens, fewer than n_tokens={n_tokens}: lower "
                         f"suite.n_tokens or give a longer suite.text_path")
    return tokens[:n_tokens].reshape(-1, length)


def nll_of_windows(model, batch: torch.Tensor, batch_size: int = 1, bar=None) -> torch.Tensor:
    """``token_nll`` of every window, ``batch_size`` windows per forward pass: ``[N, L - 1]`` (``bar``: a progress
    bar to advance by the windows scored)."""
    pieces = []
    for i in range(0, len(batch), batch_size):
        pieces.append(token_nll(model, batch[i:i + batch_size]).cpu())
        if bar is not None:
            bar.update(len(pieces[-1]))
    return torch.cat(pieces)


def position_buckets(length: int, n_buckets: int) -> list[tuple[int, int]]:
    """``n_buckets`` equal ranges of target positions ``[a, b)`` covering 0 .. length - 1."""
    targets = length - 1
    n_buckets = max(1, min(n_buckets, targets))
    edges = [round(i * targets / n_buckets) for i in range(n_buckets + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def perplexity_by_length(model, tokens: torch.Tensor, lengths: list[int], n_tokens: int,
                         batch_size: int = 1) -> dict[int, float]:
    """Perplexity of the first ``n_tokens`` tokens scored in windows of each length."""
    return {int(n): math.exp(nll_of_windows(model, windows(tokens, int(n), n_tokens), batch_size).mean().item())
            for n in lengths}


def perplexity_by_position(nll: torch.Tensor, buckets: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Perplexity of the targets in each range of positions of ``nll`` ``[N, T - 1]``."""
    return {(a, b): math.exp(nll[:, a:b].mean().item()) for a, b in buckets}


def evaluate_perplexity(model, tokens: torch.Tensor, lengths: list[int], n_tokens: int, n_buckets: int = 8,
                        batch_size: int = 1) -> dict:
    """The suite's results: ``by_length`` {L: ppl}, ``by_position`` {"a-b": ppl} of the longest windows."""
    from titans.progress import progress

    lengths = sorted(int(n) for n in lengths)
    by_length, longest = {}, None
    with progress(desc="perplexity", total=sum(n_tokens // n for n in lengths), unit="window") as bar:
        for n in lengths:
            bar.set_postfix_str(f"length {n}")
            nll = nll_of_windows(model, windows(tokens, n, n_tokens), batch_size, bar)
            by_length[n] = math.exp(nll.mean().item())
            longest = nll
    by_position = perplexity_by_position(longest, position_buckets(lengths[-1], n_buckets))
    return {"by_length": {str(n): v for n, v in by_length.items()},
            "by_position": {f"{a}-{b}": v for (a, b), v in by_position.items()},
            "n_tokens": n_tokens, "lengths": lengths}


def load_eval_tokens(tokenizer, text_path: str | Path | None = None) -> torch.Tensor:
    """Held-out tokens: the documents of ``text_path`` (default: the bundled corpus' validation split), each
    tokenized and followed by EOS, as in training (titans.data.packing)."""
    from titans.data.corpus import read_documents
    from titans.data.packing import pack_documents
    from titans.data.paths import data_dir

    path = Path(text_path) if text_path else data_dir() / "shakespeare" / "validation.txt"
    if not path.is_file():
        raise FileNotFoundError(f"perplexity text not found: {path}; pass suite.text_path=<a plain-text file>")
    documents = read_documents(path)
    ids = [tokenizer(doc, add_special_tokens=False)["input_ids"] for doc in documents]
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to separate the documents")
    return torch.as_tensor(pack_documents(ids, eos).astype("int64"))


def markdown_perplexity(results: dict) -> str:
    lengths = results["lengths"]
    lines = ["| | " + " | ".join(str(n) for n in lengths) + " |", "|---|" + "---|" * len(lengths),
             "| ppl at length | " + " | ".join(f"{results['by_length'][str(n)]:.2f}" for n in lengths) + " |",
             "", "| positions | " + " | ".join(results["by_position"]) + " |", "|---|" + "---|" * len(
                 results["by_position"]),
             f"| ppl ({lengths[-1]}-token windows) | " + " | ".join(f"{v:.2f}" for v in results["by_position"].values())
             + " |"]
    return "\n".join(lines)
