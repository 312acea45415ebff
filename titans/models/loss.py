"""Next-token cross-entropy fused with the LM head, in chunks of tokens.

``F.cross_entropy(hidden @ W^T, labels)`` materialises [T, V] logits, their log-softmax and the
gradient of both: at 16K tokens and a 32K vocabulary that is 2 GB per copy, more than the whole
model's activations. ``linear_cross_entropy`` computes the same mean loss chunk by chunk and, when
gradients are needed, the gradients of ``hidden`` and ``W`` in the same pass (softmax - one-hot
times W, and its transpose times hidden), so at most one [chunk, V] block exists at a time and the
backward is a multiplication by the incoming scalar.  Values and gradients equal the unfused
``F.cross_entropy`` (tests/models/test_models_loss.py, float64).
"""
from __future__ import annotations

import torch
from torch import Tensor

#: the label of a position that is not supervised (prompts, padding, MQAR's non-value tokens), as PyTorch's and
#: Hugging Face's cross-entropy expect it
IGNORE_INDEX = -100


def next_token_targets(outputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The model's outputs beside the labels they predict. Labels are aligned with input_ids (Hugging Face
    convention), so position t predicts labels[t + 1]: (outputs[:, :-1], labels[:, 1:]). The one place of the shift."""
    return outputs[:, :-1], labels[:, 1:]


def count_targets(labels: Tensor) -> int:
    """How many next-token targets of ``labels`` (aligned with input_ids) are supervised."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, labels: Tensor, chunk_size: int, ignore_index: int):
        # hidden [T, d], weight [V, d], labels [T]
        valid = labels != ignore_index
        n_valid = int(valid.sum())
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32 if weight.dtype != torch.float64 else weight.dtype,
                             device=weight.device) if need_w else None
        total = hidden.new_zeros((), dtype=torch.float64 if hidden.dtype == torch.float64 else torch.float32)
        scale = 1.0 / max(n_valid, 1)
        for s in range(0, hidden.shape[0], chunk_size):
            h, y, ok = hidden[s:s + chunk_size], labels[s:s + chunk_size], valid[s:s + chunk_size]
            logits = (h @ weight.t()).to(total.dtype)
            target = logits.gather(1, y.clamp(min=0).unsqueeze(1)).squeeze(1)
            peak = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(peak).exp_()  # one exp pass serves the loss and the gradient
            norm = probs.sum(dim=-1, keepdim=True)
            lse = (peak + norm.log()).squeeze(1)
            total = total + ((lse - target) * ok).sum()
            if need_h or need_w:
                grad_logits = probs.div_(norm)  # softmax
                grad_logits[torch.arange(len(y), device=y.device), y.clamp(min=0)] -= 1.0
                grad_logits.mul_(ok.to(grad_logits.dtype).unsqueeze(1) * scale)
                grad_logits = grad_logits.to(h.dtype)
                if need_h:
                    grad_h[s:s + chunk_size] = grad_logits @ weight.to(h.dtype)
                if need_w:
                    grad_w.add_(grad_logits.t() @ h)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w) if g is not None))
        ctx.has = (need_h, need_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved = list(ctx.saved_tensors)
        grad_h = (saved.pop(0) * grad_out).to(ctx.dtypes[0]) if ctx.has[0] else None
        grad_w = (saved.pop(0) * grad_out).to(ctx.dtypes[1]) if ctx.has[1] else None
        return grad_h, grad_w, None, None, None


def linear_cross_entropy(hidden: Tensor, weight: Tensor, labels: Tensor, chunk_size: int = 256,
                         ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean of -log softmax(hidden @ weight^T)[label] over the labels that are not ``ignore_index``.

    hidden [..., d], weight [V, d], labels [...] (already aligned: the label of row t is labels[t]).
    A batch without any valid label gives 0 (F.cross_entropy gives nan).
    """
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"linear_cross_entropy: hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} "
                         "must agree on every axis but the last")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return _LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight, labels.reshape(-1),
                                     chunk_size, ignore_index)
