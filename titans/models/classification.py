"""Sequence classification with a Titans language model as the backbone (genomics, paper Table 4).

HyenaDNA's fine-tuning setup: the pretrained next-nucleotide model reads the sequence, its final hidden states
are mean-pooled over the sequence's own tokens and a linear head gives the class logits. The backbone is a
whole :class:`TitansForCausalLM` (attribute ``lm``), so a pretraining checkpoint loads into it unchanged; its
LM head is not used here.

Sequences of a batch are right-padded. Every variant is causal, so the hidden state of a real token never
depends on the padding after it, and the pooled vector equals the unpadded sequence's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from titans.models.sizes import build_causal_lm


def masked_mean(hidden: Tensor, lengths: Tensor) -> Tensor:
    """Mean of hidden [B, T, d] over the first lengths[b] positions of each row -> [B, d]."""
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    mask = (positions[None, :] < lengths[:, None]).to(hidden.dtype)
    return (hidden * mask[..., None]).sum(1) / lengths.clamp(min=1)[:, None].to(hidden.dtype)


class SequenceClassifier(nn.Module):
    """Args:
        vocab_size, num_classes: from the data (the data module's ``net_inputs``).
        variant, size, overrides: the backbone, as for ``build_causal_lm`` (must match the pretraining run's
            model for ``init_from`` to load).
        pooling: "mean" over the sequence's tokens or "last" (the hidden state of its last token).
        dropout: before the head.
    """

    def __init__(self, vocab_size: int, num_classes: int, variant: str = "lmm", size: str = "tiny",
                 pooling: str = "mean", dropout: float = 0.1, **overrides):
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.lm = build_causal_lm(variant=variant, size=size, vocab_size=vocab_size, **overrides)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.lm.config.d_model, num_classes)

    def forward(self, input_ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class logits [B, num_classes] of right-padded ``input_ids`` [B, T] with ``lengths`` [B]."""
        if lengths is None:
            lengths = torch.full((input_ids.shape[0],), input_ids.shape[1], device=input_ids.device)
        hidden = self.lm.model(input_ids=input_ids).last_hidden_state
        if self.pooling == "mean":
            pooled = masked_mean(hidden, lengths)
        else:
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
        return self.head(self.dropout(pooled))


__all__ = ["SequenceClassifier", "masked_mean"]
