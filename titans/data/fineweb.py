"""FineWebEduDataModule: the paper's LM data (FineWeb-Edu, Llama-2 tokenizer, 4K context).

Two sources, same batches (dict(input_ids=LongTensor[B, seq_len])) and the same resume rule as
TextDataModule:
  1. pre-tokenized memory-mapped shards written by scripts/prepare_lm_data.py (the way to train at scale);
  2. `datasets` streaming from the hub (or from local `data_files`), tokenized and packed on the fly; the training
     documents are shuffled with a seeded buffer.
Both hold out the same validation documents (titans.data.split: a hash of each document's id): the validation set
is the first `val_documents` of them, training never reads any. The run's passes over its data are checked at the
start (check_token_budget, titans.data.budget). Without shards and without hub access it fails at construction
with one line naming the alternatives.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset

from titans.data.base import PackedLMDataModule
from titans.data.budget import (FINEWEB_EDU_SUBSETS, TokenBudget, check_budget, format_tokens, smallest_subset_holding,
                                subset_train_tokens)
from titans.data.packing import PackedWindows, pack_documents, token_dtype
from titans.data.paths import data_dir, resolve_path
from titans.data.shards import META_FILE, read_meta, shard_windows, train_tokens_of
from titans.data.split import check_val_fraction, document_key, is_held_out
from titans.data.tokenizers import tokenizer_fingerprint
from titans.errors import DataUnavailableError, first_line
from titans.hub import require_hub

log = logging.getLogger(__name__)

DEFAULT_NAME = "HuggingFaceFW/fineweb-edu"
LOCAL_BUILDERS = ("json", "parquet", "text", "csv", "arrow")


def load_stream(name: str = DEFAULT_NAME, dataset_config: str | None = "sample-10BT", data_files=None):
    """The data set's train split as a `datasets` IterableDataset (streaming, nothing downloaded up front)."""
    from datasets import load_dataset

    if data_files is not None:
        return load_dataset(name, data_files=data_files, split="train", streaming=True)
    return load_dataset(name, dataset_config, split="train", streaming=True)


def split_stream(stream, split: str, val_fraction: float, id_field: str | None = "id", text_field: str = "text"):
    """The documents of one split ("train" or "validation", titans.data.split) of a `datasets` stream, in its order."""
    want = {"train": False, "validation": True}[split]
    return stream.filter(lambda ex: is_held_out(document_key(ex, id_field, text_field), val_fraction) == want)


def encode_documents(tokenizer, texts: Iterator[str], batch_size: int = 256) -> Iterator[list[int]]:
    """Token ids of each document (no special tokens; the caller appends EOS)."""
    backend = tokenizer.backend_tokenizer
    while batch := list(itertools.islice(texts, batch_size)):
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            yield encoding.ids


class StreamingPackedDataset(IterableDataset):
    """Training documents (the held-out ones left out) -> EOS-joined stream -> seq_len windows, endlessly (epoch e
    reshuffles with seed + e). Yields this rank's windows (global window index g >= start_index,
    g % world_size == rank). Resuming re-tokenizes the skipped windows; for long runs prefer prepared shards."""

    def __init__(self, name, dataset_config, data_files, text_field, tokenizer, seq_len, seed, shuffle_buffer,
                 val_fraction, id_field="id", start_index=0, rank=0, world_size=1):
        super().__init__()
        self.source = dict(name=name, dataset_config=dataset_config, data_files=data_files, text_field=text_field)
        self.tokenizer, self.seq_len, self.seed, self.shuffle_buffer = tokenizer, seq_len, seed, shuffle_buffer
        self.val_fraction, self.id_field, self.start_index = val_fraction, id_field, start_index
        self.rank, self.world_size = rank, world_size

    def _texts(self, epoch: int) -> Iterator[str]:
        s = self.source
        stream = split_stream(load_stream(s["name"], s["dataset_config"], s["data_files"]), "train",
                              self.val_fraction, self.id_field, s["text_field"])
        stream = stream.shuffle(seed=self.seed + epoch, buffer_size=self.shuffle_buffer)
        return (example[s["text_field"]] for example in stream)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        eos, g = self.tokenizer.eos_token_id, 0
        for epoch in itertools.count():
            buffer, produced = [], False
            for ids in encode_documents(self.tokenizer, self._texts(epoch)):
                buffer.extend(ids)
                buffer.append(eos)
                while len(buffer) >= self.seq_len:
                    window, buffer = buffer[: self.seq_len], buffer[self.seq_len:]
                    produced = True
                    if g >= self.start_index and g % self.world_size == self.rank:
                        yield {"input_ids": torch.tensor(window, dtype=torch.long)}
                    g += 1
            if not produced:
                raise ValueError(f"the training stream has fewer than seq_len={self.seq_len} tokens")


class FineWebEduDataModule(PackedLMDataModule):
    """FineWeb-Edu (or any text data set) for language modelling; see the module docstring.

    val_fraction, val_documents, id_field: the held-out split (titans.data.split) of the streaming path; prepared
        shards carry the split they were written with (meta.json).
    allow_repeat: whether a run that needs more than one pass over its training data may go on (with a warning
        that names a larger subset) or stops with that message (check_token_budget)."""

    def __init__(self, shards_dir: str | os.PathLike | None = None, name: str = DEFAULT_NAME,
                 dataset_config: str | None = "sample-10BT", seq_len: int = 4096,
                 batch_size: int = 8, tokenizer=None, seed: int = 0, val_batches: int | None = 50,
                 val_documents: int = 2000, val_fraction: float = 0.01, id_field: str | None = "id",
                 allow_repeat: bool = True, shuffle_buffer: int = 10000, text_field: str = "text",
                 data_files=None, num_workers: int = 0, pin_memory: bool = False):
        explicit_dir = shards_dir is not None
        self.shards_dir = resolve_path(shards_dir) if explicit_dir else data_dir() / "fineweb-edu"
        self.name, self.dataset_config, self.data_files, self.text_field = name, dataset_config, data_files, text_field
        if val_documents <= 0:
            raise ValueError(f"val_documents={val_documents} must be positive (held-out documents to validate on)")
        self.val_documents, self.shuffle_buffer = val_documents, shuffle_buffer
        self.val_fraction, self.id_field = check_val_fraction(val_fraction), id_field
        self.allow_repeat = bool(allow_repeat)
        self.meta = None
        if (self.shards_dir / META_FILE).is_file():
            self.meta = read_meta(self.shards_dir)
            tokenizer = self.meta["tokenizer"] if tokenizer is None else tokenizer
        elif explicit_dir:
            read_meta(self.shards_dir)  # raises the "run prepare_lm_data.py" error
        else:
            self._check_stream_available()
            tokenizer = {"kind": "llama2"} if tokenizer is None else tokenizer
        super().__init__(seq_len=seq_len, batch_size=batch_size,
                         tokenizer=tokenizer, seed=seed, val_batches=val_batches, num_workers=num_workers,
                         pin_memory=pin_memory)
        if self.meta is not None and self.meta["tokenizer_fingerprint"] != tokenizer_fingerprint(self.tokenizer):
            raise ValueError(
                f"the shards in {self.shards_dir} were tokenized with {self.meta['tokenizer']}, not with "
                f"{self.tokenizer_config}: use that tokenizer or re-run scripts/prepare_lm_data.py with this one"
            )

    @property
    def streaming(self) -> bool:
        return self.meta is None

    def _offline_alternative(self) -> str:
        return (f"data=shakespeare (the bundled offline corpus), or pre-tokenized shards in {self.shards_dir} "
                f"(python scripts/prepare_lm_data.py --out {self.shards_dir}, where the hub is reachable)")

    def _check_stream_available(self) -> None:
        if self.data_files is not None or self.name in LOCAL_BUILDERS or Path(self.name).exists():
            return
        require_hub(f"FineWeb-Edu ({self.name}, {self.dataset_config}) without pre-tokenized shards",
                    self._offline_alternative())

    # ------------------------------------------------------------------------------ the token budget
    def token_budget(self, train_tokens: int) -> TokenBudget:
        """What a run of ``train_tokens`` tokens reads against what this source holds (titans.data.budget): the exact
        count of prepared shards, the dataset card's size of a FineWeb-Edu config, or unknown (local files)."""
        train_tokens = int(train_tokens)
        larger = smallest_subset_holding(train_tokens, self.val_fraction)
        if not self.streaming:
            source = self.meta.get("source") or {}
            fineweb = source.get("name") == DEFAULT_NAME
            what = f"FineWeb-Edu {source.get('dataset_config')}, " if fineweb else ""
            config = f"--dataset-config {larger} " if fineweb and larger else ""
            remedy = (f"prepare shards that hold it (python scripts/prepare_lm_data.py {config}--max-tokens "
                      f"{train_tokens} --out DIR, then data.shards_dir=DIR)")
            return TokenBudget(train_tokens, train_tokens_of(self.meta),
                               f"the prepared shards in {self.shards_dir} ({what}exact count)", remedy)
        if self.name == DEFAULT_NAME and self.dataset_config in FINEWEB_EDU_SUBSETS:
            available = subset_train_tokens(self.dataset_config, self.val_fraction)
            remedy = (f"use data.dataset_config={larger} for unique tokens" if larger else
                      "no public FineWeb-Edu subset holds it: lower train_tokens")
            return TokenBudget(train_tokens, available,
                               f"FineWeb-Edu {self.dataset_config} (about {format_tokens(available)} training tokens: "
                               f"the dataset card's GPT-2 count, see titans/data/budget.py)", remedy)
        return TokenBudget(train_tokens, None, f"{self.name} ({self.data_files or self.dataset_config})")

    def check_token_budget(self, train_tokens: int) -> float | None:
        """Log the passes a run of ``train_tokens`` tokens makes over the training data; more than one is a warning
        that names a larger subset, or a ValueError under ``allow_repeat=False``. Needs no hub. Returns the passes."""
        return check_budget(self.token_budget(train_tokens), self.allow_repeat, log)

    # ------------------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        if self.val_set is not None:
            return
        if self.streaming:
            try:
                stream = split_stream(load_stream(self.name, self.dataset_config, self.data_files), "validation",
                                      self.val_fraction, self.id_field, self.text_field)
                texts = (example[self.text_field] for example in stream.take(self.val_documents))
                docs = list(encode_documents(self.tokenizer, texts))
            except (OSError, ConnectionError) as err:  # network errors, gated or unknown data set
                raise DataUnavailableError(f"{self.name} ({self.dataset_config}) is not available: loading it failed "
                                           f"({first_line(err)}); use {self._offline_alternative()}") from err
            tokens = pack_documents(docs, self.tokenizer.eos_token_id, dtype=token_dtype(len(self.tokenizer)))
            self.val_set = PackedWindows(tokens, self.seq_len)
            if len(self.val_set) == 0:
                raise ValueError(f"the {len(docs)} held-out validation documents hold fewer than seq_len="
                                 f"{self.seq_len} tokens: raise val_documents or val_fraction")
        else:
            self.train_set = shard_windows(self.shards_dir, self.meta, "train", self.seq_len)
            self.val_set = shard_windows(self.shards_dir, self.meta, "validation", self.seq_len)

    def _require_setup(self):
        if self.val_set is None:
            self.setup("fit")

    def train_dataloader(self, start_index: int | None = None) -> DataLoader:
        if not self.streaming:
            return super().train_dataloader(start_index)
        self._require_setup()
        rank, world_size = self._rank_and_world_size()
        dataset = StreamingPackedDataset(
            self.name, self.dataset_config, self.data_files, self.text_field, self.tokenizer, self.seq_len,
            self.seed, self.shuffle_buffer, val_fraction=self.val_fraction, id_field=self.id_field,
            start_index=self.train_start_index() if start_index is None else start_index,
            rank=rank, world_size=world_size,
        )
        # one process: the window order (and so resuming) stays exact
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=0, pin_memory=self.pin_memory)


__all__ = ["FineWebEduDataModule", "StreamingPackedDataset", "encode_documents", "load_stream", "split_stream"]
