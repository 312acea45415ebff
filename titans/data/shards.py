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

Everything is checked before a byte of a shard is mapped (``read_meta``, ``shard_windows``): meta.json must be
valid JSON with these entries, ``dtype`` one of :data:`TOKEN_DTYPES` (unsigned integers wide enough for
``vocab_size``), and every listed shard a file of exactly ``tokens`` x itemsize bytes. Windows check their ids
against ``vocab_size`` as they are read. A bad file is a ``ValueError`` naming it, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from titans.errors import DataUnavailableError
from titans.data.packing import PackedWindows, token_dtype

SHARD_FORMAT = 2
META_FILE = "meta.json"
#: the dtypes a shard may hold: token ids are non-negative integers (anything else, e.g. numpy's "O" for object
#: pointers, would be memory-mapped as garbage or crash the process)
TOKEN_DTYPES = ("uint8", "uint16", "uint32", "int32", "int64")


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
    """The shard directory's meta.json, checked (see :func:`check_meta`)."""
    path = Path(shards_dir) / META_FILE
    if not path.is_file():
        raise DataUnavailableError(f"no {META_FILE} in {shards_dir}: write shards with "
                                   f"python scripts/prepare_lm_data.py --out {shards_dir}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): re-run scripts/prepare_lm_data.py") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} holds a {type(meta).__name__}, not the shard description: re-run "
                         f"scripts/prepare_lm_data.py")
    if meta.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path} has shard format {meta.get('format')}, this code reads format {SHARD_FORMAT}: "
                         f"re-run scripts/prepare_lm_data.py")
    check_meta(shards_dir, meta)
    return meta


def _bad_meta(shards_dir, what: str) -> ValueError:
    return ValueError(f"{Path(shards_dir) / META_FILE}: {what}; re-run scripts/prepare_lm_data.py --out {shards_dir}")


def shard_dtype(shards_dir: str | Path, meta: dict) -> np.dtype:
    """The token dtype meta.json names, if it is one of :data:`TOKEN_DTYPES` and holds every id of the vocabulary."""
    name = meta.get("dtype")
    if not isinstance(name, str) or name not in TOKEN_DTYPES:
        raise _bad_meta(shards_dir, f'"dtype" is {name!r}, not a token id type (one of {", ".join(TOKEN_DTYPES)})')
    dtype = np.dtype(name)
    vocab_size = meta.get("vocab_size")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise _bad_meta(shards_dir, f'"vocab_size" is {vocab_size!r}, not a positive integer')
    if vocab_size - 1 > np.iinfo(dtype).max:
        raise _bad_meta(shards_dir, f'"dtype" {name} cannot hold the ids of "vocab_size" {vocab_size}')
    return dtype


def check_meta(shards_dir: str | Path, meta: dict) -> None:
    """Raise ValueError unless meta.json describes shards this code can map: a token dtype (:func:`shard_dtype`),
    integer ``seq_len`` and per-shard token counts, and shard files whose sizes are those counts (a missing file is
    a DataUnavailableError)."""
    dtype = shard_dtype(shards_dir, meta)
    seq_len = meta.get("seq_len")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise _bad_meta(shards_dir, f'"seq_len" is {seq_len!r}, not a positive integer')
    splits = meta.get("splits")
    if not isinstance(splits, dict):
        raise _bad_meta(shards_dir, '"splits" is missing or not a mapping of split -> shard list')
    for split, entries in splits.items():
        if not isinstance(entries, list):
            raise _bad_meta(shards_dir, f'"splits.{split}" is not a list of shards')
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise _bad_meta(shards_dir, f'a shard of "splits.{split}" has no "file": {entry!r}')
            name, tokens = entry["file"], entry.get("tokens")
            if Path(name).name != name:
                raise _bad_meta(shards_dir, f"shard file {name!r} is not a file name in the shard directory")
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
                raise _bad_meta(shards_dir, f'shard {name} has "tokens" {tokens!r}, not a count >= 0')
            path = Path(shards_dir) / name
            if not path.is_file():
                raise DataUnavailableError(f"shard {path} listed in {META_FILE} is missing: re-run "
                                           f"scripts/prepare_lm_data.py --out {shards_dir}")
            size, expected = path.stat().st_size, tokens * dtype.itemsize
            if size != expected:
                raise ValueError(f"shard {path} has {size} bytes, but {META_FILE} says {tokens} {dtype.name} tokens "
                                 f"({expected} bytes): the file is truncated or from another preparation; re-run "
                                 f"scripts/prepare_lm_data.py --out {shards_dir}")


class ShardWindows(PackedWindows):
    """The windows of one shard file; each checks its ids against the vocabulary as it is read (a shard written for
    a larger vocabulary would otherwise index past the embedding)."""

    def __init__(self, path: Path, tokens: np.ndarray, seq_len: int, vocab_size: int):
        super().__init__(tokens, seq_len)
        self.path, self.vocab_size = path, vocab_size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        ids = item["input_ids"]
        if len(ids) and int(ids.max()) >= self.vocab_size:
            start = (index % self.num_windows) * self.seq_len
            raise ValueError(f"shard {self.path} holds token id {int(ids.max())} (tokens {start}..{start + len(ids)}) "
                             f"but {META_FILE} says vocab_size {self.vocab_size}: re-run scripts/prepare_lm_data.py")
        return item


def shard_windows(shards_dir: str | Path, meta: dict, split: str, seq_len: int) -> ConcatDataset:
    """All seq_len windows of one split, shard after shard (memory-mapped, read lazily), after checking meta.json
    and the files (:func:`check_meta`)."""
    check_meta(shards_dir, meta)
    dtype = shard_dtype(shards_dir, meta)
    entries = meta["splits"].get(split) or []
    parts = []
    for entry in entries:
        path = Path(shards_dir) / entry["file"]
        if entry["tokens"] == 0:
            continue
        tokens = np.memmap(path, dtype=dtype, mode="r", shape=(entry["tokens"],))
        windows = ShardWindows(path, tokens, seq_len, int(meta["vocab_size"]))
        if len(windows):
            parts.append(windows)
    if not parts:
        raise ValueError(f"the {split!r} split in {shards_dir} has no sequence of seq_len={seq_len} tokens: lower "
                         f"seq_len or prepare more data")
    return ConcatDataset(parts)
