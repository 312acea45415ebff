"""Per-layer key/value caches for generation.

``KVCache`` keeps the persistent-prefix keys (always visible) apart from the token keys, and bounds
the token keys to ``max_tokens`` (the attention window) when given, so memory stays constant for
sliding-window attention and grows only for full attention.
"""
from dataclasses import dataclass, fields
from typing import Callable

import torch


@dataclass
class KVCache:
    max_tokens: int | None = None  # None: unbounded (full causal attention)
    k_prefix: torch.Tensor | None = None
    v_prefix: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    def extend(self, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (past + new) keys/values for this step's attention and store the bounded tail."""
        if self.k is not None:
            k_new, v_new = torch.cat([self.k, k_new], 2), torch.cat([self.v, v_new], 2)
        if self.max_tokens is not None and k_new.shape[2] > self.max_tokens:
            # copy, so that the long prefill tensors are not kept alive by a view
            self.k, self.v = k_new[:, :, -self.max_tokens:].clone(), v_new[:, :, -self.max_tokens:].clone()
        else:
            self.k, self.v = k_new, v_new
        return k_new, v_new

    @property
    def n_tokens(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "KVCache":
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                setattr(self, f.name, fn(value))
        return self
