"""Pre-tokenized, memory-mapped token shards (written by scripts/prepare_lm_data.py).

A shard directory holds meta.json and flat binary files of uint16 (vocab <= 65536) or uint32 token ids:
documents, each followed by EOS, concatenated; each shard's length is a multiple of meta["seq_len"] so
sequences never straddle two shards.

meta.json: {"format": 2, "dtype": "uint16", "seq_len": 4096, "eos_token_id": 2, "vocab_size": 32000,
            "tokenizer": {build_tokenizer kwargs}, "tokenizer_fingerprint": "...",
            "source": {"name", "dataset_config", "data_files", "text_field", "id_field", "documents_read",
                       "exhausted", "train_budget"},
            "validation_split": {"hash": "blake2b-64", "key": "id", "val_fraction": 0.01, "val_documents": 2000},
            "documents": {"train": N, "validation": K},
            "splits": {"train": [{"file": "train-00000.bin", "tokens": N}, ...], "validation": [...]}}
Format 1 (validation = the first documents of the stream) is refused: re-run the script.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset

from titans.errors import DataUnavailableError
from titans.data.packing import PackedWindows, token_dtype

SHARD_FORMAT = 2
META_FILE = "meta.json"


class ShardWriter:
    """Appends documents (token id lists) to one split; writes a shard each `shard_tokens` tokens
    (rounded down to a multiple of seq_len). close() writes the last whole sequences and returns the list
    of {"file", "tokens"} entries; the incomplete tail is dropped.

    A stopped writer continues from ``state_dict()`` and ``pending()`` (the tokens not yet in a shard) through
    ``load_state``: scripts/prepare_lm_data.py saves both after each shard and resumes from them."""

    def __init__(self, out_dir: str | Path, split: str, eos_token_id: int, vocab_size: int, seq_len: int,
                 shard_tokens: int = 100_000_000):
        self.out_dir, self.split, self.eos, self.seq_len = Path(out_dir), split, eos_token_id, seq_len
        self.dtype = token_dtype(vocab_size)
        self.shard_tokens = max(seq_len, shard_tokens // seq_len * seq_len)
        self.buffer = np.empty(self.shard_tokens, dtype=self.dtype)
        self.filled = 0
        self.shards: list[dict] = []
        self.total_tokens = 0  # tokens written, whole sequences only
        self.documents = 0  # documents added
        self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def whole_sequence_tokens(self) -> int:
        """The tokens close() would keep now: those written plus the whole sequences still in the buffer."""
        return self.total_tokens + self.filled // self.seq_len * self.seq_len

    def state_dict(self) -> dict:
        return {"shards": [dict(e) for e in self.shards], "total_tokens": self.total_tokens,
                "documents": self.documents, "filled": self.filled}

    def pending(self) -> np.ndarray:
        """The tokens added since the last shard (not yet on disk)."""
        return self.buffer[: self.filled]

    def load_state(self, state: dict, pending: np.ndarray) -> None:
        if len(pending) != state["filled"] or len(pending) >= self.shard_tokens:
            raise ValueError(f"the saved {self.split} writer state does not match its pending tokens "
                             f"({len(pending)} vs {state['filled']}): delete {self.out_dir} and start again")
        self.shards = [dict(e) for e in state["shards"]]
        self.total_tokens, self.documents = int(state["total_tokens"]), int(state["documents"])
        self.filled = len(pending)
        self.buffer[: self.filled] = pending

    def add(self, ids: Iterable[int]) -> None:
        ids = np.fromiter(ids, dtype=np.int64)
        ids = np.append(ids, self.eos).astype(self.dtype)
        self.documents += 1
        while len(ids):
            take = min(len(ids), self.shard_tokens - self.filled)
            self.buffer[self.filled: self.filled + take] = ids[:take]
            self.filled += take
            ids = ids[take:]
            if self.filled == self.shard_tokens:
                self._flush()

    def _flush(self) -> None:
        usable = self.filled // self.seq_len * self.seq_len
        if usable:
            name = f"{self.split}-{len(self.shards):05d}.bin"
            self.buffer[:usable].tofile(self.out_dir / name)
            self.shards.append({"file": name, "tokens": int(usable)})
            self.total_tokens += usable
        self.filled = 0

    def close(self) -> list[dict]:
        self._flush()
        return self.shards


def write_meta(out_dir: str | Path, splits: dict[str, list[dict]], *, seq_len: int, eos_token_id: int,
               vocab_size: int, tokenizer_config: dict, tokenizer_fingerprint: str, source: dict,
               validation_split: dict | None = None, documents: dict[str, int] | None = None) -> Path:
    meta = {
        "format": SHARD_FORMAT, "dtype": token_dtype(vocab_size).name, "seq_len": seq_len,
        "eos_token_id": eos_token_id, "vocab_size": vocab_size, "tokenizer": tokenizer_config,
        "tokenizer_fingerprint": tokenizer_fingerprint, "source": source, "validation_split": validation_split,
        "documents": documents, "splits": splits,
    }
    path = Path(out_dir) / META_FILE
    write_json_atomic(path, meta)
    return path


def write_json_atomic(path: Path, value) -> None:
    """Write JSON so that a reader (or a resumed run) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def train_tokens_of(meta: dict) -> int:
    """The exact number of tokens in the shards' train split."""
    return sum(int(e["tokens"]) for e in meta["splits"].get("train") or [])


def read_meta(shards_dir: str | Path) -> dict:
    path = Path(shards_dir) / META_FILE
    if not path.is_file():
        raise DataUnavailableError(f"no {META_FILE} in {shards_dir}: write shards with "
                                   f"python scripts/prepare_lm_data.py --out {shards_dir}")
    meta = json.loads(path.read_text())
    if meta.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path} has shard format {meta.get('format')}, this code reads format {SHARD_FORMAT}: "
                         f"re-run scripts/prepare_lm_data.py")
    return meta


def shard_windows(shards_dir: str | Path, meta: dict, split: str, seq_len: int) -> ConcatDataset:
    """All seq_len windows of one split, shard after shard (memory-mapped, read lazily)."""
    entries = meta["splits"].get(split) or []
    parts = []
    for entry in entries:
        path = Path(shards_dir) / entry["file"]
        if not path.is_file():
            raise DataUnavailableError(f"shard {path} listed in {META_FILE} is missing: re-run "
                                       f"scripts/prepare_lm_data.py --out {shards_dir}")
        tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(entry["tokens"],))
        windows = PackedWindows(tokens, seq_len)
        if len(windows):
            parts.append(windows)
    if not parts:
        raise ValueError(f"the {split!r} split in {shards_dir} has no sequence of seq_len={seq_len} tokens: lower "
                         f"seq_len or prepare more data")
    return ConcatDataset(parts)
