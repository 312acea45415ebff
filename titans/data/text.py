"""TextDataModule: the bundled corpus (data/shakespeare/ by default), tokenized once and cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from titans.data.base import PackedLMDataModule
from titans.data.corpus import read_documents
from titans.errors import DataUnavailableError
from titans.data.packing import PackedWindows, pack_documents, token_dtype
from titans.data.paths import cache_dir as default_cache_dir
from titans.data.paths import data_dir as default_data_dir
from titans.data.paths import resolve_path
from titans.data.tokenizers import tokenizer_fingerprint

SPLITS = {"train": "train.txt", "validation": "validation.txt"}


class TextDataModule(PackedLMDataModule):
    """Language-model batches from a directory with train.txt and validation.txt (documents separated by
    `<|endoftext|>` lines, see titans.data.corpus). Documents are joined with EOS and cut into
    non-overlapping seq_len windows; token ids are cached under cache_dir (default data/cache/) keyed
    by a hash of the tokenizer and the text.

    Train: infinite, seeded, resumable, rank-sharded (see titans.data.sampler). Validation: a fixed
    set, the first val_batches * batch_size windows (all when val_batches is None).
    Batches: dict(input_ids=LongTensor[batch_size, seq_len]); labels are the input ids.
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, seq_len: int = 256,
                 batch_size: int = 8, tokenizer=None, seed: int = 0, val_batches: int | None = None,
                 num_workers: int = 0, cache_dir: str | os.PathLike | None = None, pin_memory: bool = False):
        self.data_dir = resolve_path(data_dir) if data_dir else default_data_dir() / "shakespeare"
        missing = [str(self.data_dir / name) for name in SPLITS.values() if not (self.data_dir / name).is_file()]
        if missing:
            raise DataUnavailableError(
                f"missing corpus file(s) {', '.join(missing)}: restore data/shakespeare/ (git checkout data/, or "
                f"python scripts/build_corpus.py) or set data.data_dir to a directory with train.txt and validation.txt"
            )
        super().__init__(seq_len=seq_len, batch_size=batch_size,
                         tokenizer=tokenizer, seed=seed, val_batches=val_batches, num_workers=num_workers,
                         pin_memory=pin_memory)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()

    def prepare_data(self) -> None:
        for split in SPLITS:
            self.token_ids(split)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self._windows("train")
        self.val_set = self._windows("validation")

    def _windows(self, split: str) -> PackedWindows:
        windows = PackedWindows(self.token_ids(split), self.seq_len)
        if len(windows) == 0:
            raise ValueError(f"{self.data_dir / SPLITS[split]} has {len(windows.tokens)} tokens, fewer than "
                             f"seq_len={self.seq_len}: lower seq_len")
        return windows

    def token_ids(self, split: str) -> np.ndarray:
        """The split's packed token stream, read from (or written to) the cache."""
        path = self.data_dir / SPLITS[split]
        raw = path.read_bytes()
        key = hashlib.sha256(f"{tokenizer_fingerprint(self.tokenizer)}|{hashlib.sha256(raw).hexdigest()}".encode())
        cached = self.cache_dir / f"{self.data_dir.name}-{split}-{key.hexdigest()[:16]}.npy"
        if cached.is_file():
            return np.load(cached, mmap_mode="r")
        ids = self._tokenize(read_documents(path))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, ids)
        tmp.replace(cached)
        return ids

    def _tokenize(self, documents: list[str]) -> np.ndarray:
        encodings = self.tokenizer.backend_tokenizer.encode_batch(documents, add_special_tokens=False)
        return pack_documents([e.ids for e in encodings], self.tokenizer.eos_token_id,
                              dtype=token_dtype(len(self.tokenizer)))
