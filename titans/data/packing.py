"""Documents -> one token stream (each document followed by EOS) -> fixed-length windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids < vocab_size (uint16 up to 65536 tokens)."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def pack_documents(token_ids: Sequence[Sequence[int]], eos_id: int, dtype=np.uint32) -> np.ndarray:
    """Concatenate documents, each followed by EOS, into one 1-D array."""
    total = sum(len(ids) + 1 for ids in token_ids)
    out = np.empty(total, dtype=dtype)
    pos = 0
    for ids in token_ids:
        out[pos: pos + len(ids)] = ids
        out[pos + len(ids)] = eos_id
        pos += len(ids) + 1
    return out


class PackedWindows(Dataset):
    """Non-overlapping windows of `seq_len` tokens over a 1-D token array (numpy array or memmap);
    the incomplete tail is dropped. Item i is dict(input_ids=LongTensor[seq_len])."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.tokens, self.seq_len = tokens, seq_len
        self.num_windows = len(tokens) // seq_len

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.num_windows <= index < self.num_windows:
            raise IndexError(index)
        start = (index % self.num_windows) * self.seq_len
        window = np.asarray(self.tokens[start: start + self.seq_len], dtype=np.int64)
        return {"input_ids": torch.from_numpy(window)}
