"""Per-layer key/value cache for generation.

``KVCache`` keeps the persistent-prefix keys (always visible) apart from the token keys, and bounds the token keys
to ``max_tokens`` (the attention window) when given, so memory stays constant for sliding-window attention and
grows only for full attention. A cache is a value: ``extend`` and ``map`` return a new one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class KVCache:
    max_tokens: int | None = None  # None: unbounded (full causal attention)
    k_prefix: torch.Tensor | None = None
    v_prefix: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    def extend(self, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, "KVCache"]:
        """(past + new keys, past + new values) for this step's attention, and the cache that keeps their
        bounded tail."""
        if self.k is not None:
            k_new, v_new = torch.cat([self.k, k_new], 2), torch.cat([self.v, v_new], 2)
        k_kept, v_kept = k_new, v_new
        if self.max_tokens is not None and k_new.shape[2] > self.max_tokens:
            # copy, so that the long prefill tensors are not kept alive by a view
            k_kept, v_kept = k_new[:, :, -self.max_tokens:].clone(), v_new[:, :, -self.max_tokens:].clone()
        return k_new, v_new, dataclasses.replace(self, k=k_kept, v=v_kept)

    def with_prefix(self, k_prefix: torch.Tensor, v_prefix: torch.Tensor) -> "KVCache":
        return dataclasses.replace(self, k_prefix=k_prefix, v_prefix=v_prefix)

    @property
    def n_tokens(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "KVCache":
        """A new cache with ``fn`` applied to every tensor (index_select for beam search, .to(device), ...)."""
        return dataclasses.replace(self, **{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})
