"""Multi-query associative recall (MQAR), generated on the fly, with an optional gap.

The task of Zoology (Arora et al. 2023, "Zoology: measuring and improving recall in efficient language
models"): a sequence first lists ``num_pairs`` key-value pairs ``k1 v1 k2 v2 ...``, then asks for keys again;
after each query key the model must produce that key's value. Keys come from one band of the vocabulary and
values from another, both drawn without replacement within a sequence, so a pair can only be answered by
recalling it. Loss and accuracy count the value positions of the queries only (every other label is -100).

Our addition is the **gap**: ``gap`` filler tokens (from a band of their own) between the last pair and the
query region. With a gap longer than an attention window (SWA, MAG, MAL) or a MAC segment, the pairs are out
of the attention's reach when the queries come, so only a long-term memory can answer.

Layout of one sequence of ``seq_len`` tokens (token ids):

    [BOS] k1 v1 ... kn vn | gap x filler | query region: q query pairs "k v" at random non-overlapping
                                            positions (each key queried at most once), filler elsewhere

    BOS = 0, keys = 1 .. K, values = K+1 .. 2K, filler = 2K+1 .. 2K+F   (K = num_keys, F = num_filler)

Each sample is a pure function of (seed, split, index): the training stream (split 0) and the validation
stream (split 1) come from different seed sequences, and a run resumed at step s sees the samples it would
have seen. Chance accuracy is 1 / num_keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from titans.data.sampler import ResumableSampler

IGNORE_INDEX = -100
BOS = 0
TRAIN, VALIDATION = 0, 1
#: the virtual size of the training stream (samples are generated, not stored)
TRAIN_STREAM = 2**40


@dataclass(frozen=True)
class MQARSpec:
    """The shape of the task; ``vocab_size`` and ``chance`` follow from it."""

    seq_len: int = 128
    num_pairs: int = 8
    num_queries: int | None = None  # None = every key once
    gap: int = 0
    num_keys: int = 64
    num_filler: int = 16

    def __post_init__(self):
        queries = self.queries
        for name, value in (("seq_len", self.seq_len), ("num_pairs", self.num_pairs), ("num_keys", self.num_keys)):
            if value < 1:
                raise ValueError(f"mqar: {name} must be >= 1, got {value}")
        if self.gap < 0 or self.num_filler < 0:
            raise ValueError(f"mqar: gap and num_filler must be >= 0, got {self.gap} and {self.num_filler}")
        if self.num_pairs > self.num_keys:
            raise ValueError(f"mqar: num_pairs={self.num_pairs} needs at least as many distinct keys, but "
                             f"num_keys={self.num_keys}: raise num_keys or lower num_pairs")
        if not 1 <= queries <= self.num_pairs:
            raise ValueError(f"mqar: num_queries must be in 1..num_pairs={self.num_pairs}, got {queries}")
        if (self.gap > 0 or self.query_region > 2 * queries) and self.num_filler < 1:
            raise ValueError("mqar: a gap or a query region longer than the queries needs filler tokens: "
                             "set num_filler >= 1")
        if self.query_region < 2 * queries:
            need = 1 + 2 * self.num_pairs + self.gap + 2 * queries
            raise ValueError(f"mqar: seq_len={self.seq_len} is too short for 1 + 2*num_pairs + gap + 2*num_queries "
                             f"= {need} tokens: raise seq_len to at least {need} or lower num_pairs/gap")

    @property
    def queries(self) -> int:
        return self.num_pairs if self.num_queries is None else int(self.num_queries)

    @property
    def query_start(self) -> int:
        return 1 + 2 * self.num_pairs + self.gap

    @property
    def query_region(self) -> int:
        return self.seq_len - self.query_start

    @property
    def vocab_size(self) -> int:
        return 1 + 2 * self.num_keys + self.num_filler

    @property
    def chance(self) -> float:
        return 1.0 / self.num_keys


def mqar_sample(spec: MQARSpec, seed: int, split: int, index: int) -> dict[str, torch.Tensor]:
    """One sequence: input_ids [seq_len] and labels [seq_len] (the value at each query's value position,
    -100 elsewhere; aligned with input_ids, the model shifts them)."""
    rng = np.random.default_rng([seed, split, index])
    n, q, K = spec.num_pairs, spec.queries, spec.num_keys
    keys = rng.choice(K, size=n, replace=False) + 1
    values = rng.choice(K, size=n, replace=False) + 1 + K
    ids = np.empty(spec.seq_len, dtype=np.int64)
    ids[0] = BOS
    ids[1:1 + 2 * n:2], ids[2:2 + 2 * n:2] = keys, values
    if spec.num_filler:
        filler_start = 1 + 2 * K
        ids[1 + 2 * n:] = rng.integers(filler_start, filler_start + spec.num_filler, size=spec.seq_len - 1 - 2 * n)
    labels = np.full(spec.seq_len, IGNORE_INDEX, dtype=np.int64)
    # q query pairs at random non-overlapping slots of the query region: choose the q pair starts among
    # (region - 2q + q) positions as a sorted subset, then space them out by one token each (stars and bars)
    region = spec.query_region
    starts = np.sort(rng.choice(region - 2 * q + q, size=q, replace=False)) + np.arange(q)
    starts = starts + spec.query_start
    asked = rng.permutation(n)[:q]
    ids[starts], ids[starts + 1] = keys[asked], values[asked]
    labels[starts + 1] = values[asked]
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}


class MQARDataset(Dataset):
    """``size`` samples of one split; item i is ``mqar_sample(spec, seed, split, i)``."""

    def __init__(self, spec: MQARSpec, seed: int, split: int, size: int):
        self.spec, self.seed, self.split, self.size = spec, seed, split, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return mqar_sample(self.spec, self.seed, self.split, index)


class MQARDataModule(L.LightningDataModule):
    """MQAR batches for ``train.py`` (``data=mqar``): an endless training stream and a fixed validation set.

    The model's vocabulary is ``vocab_size`` (1 + 2 * num_keys + num_filler); no tokenizer is involved
    (a ``tokenizer`` argument is accepted and ignored, so the pipeline can pass one).
    """

    def __init__(self, seq_len: int = 128, num_pairs: int = 8, num_queries: int | None = None, gap: int = 0,
                 num_keys: int = 64, num_filler: int = 16, batch_size: int = 64, seed: int = 0,
                 val_samples: int = 1024, num_workers: int = 0, tokenizer=None):
        super().__init__()
        self.spec = MQARSpec(seq_len=seq_len, num_pairs=num_pairs, num_queries=num_queries, gap=gap,
                             num_keys=num_keys, num_filler=num_filler)
        if batch_size < 1 or val_samples < 1:
            raise ValueError(f"mqar: batch_size and val_samples must be >= 1, got {batch_size} and {val_samples}")
        self.seq_len, self.micro_batch_size, self.seed = seq_len, batch_size, seed
        self.val_samples, self.num_workers = val_samples, num_workers
        self.tokenizer, self.tokenizer_config = None, None

    @property
    def vocab_size(self) -> int:
        return self.spec.vocab_size

    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_start_index(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return 0
        return trainer.global_step * trainer.accumulate_grad_batches * self.micro_batch_size * trainer.world_size

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world_size()
        sampler = ResumableSampler(TRAIN_STREAM, seed=self.seed, start_index=self.train_start_index(),
                                   rank=rank, world_size=world, shuffle=False)
        return DataLoader(MQARDataset(self.spec, self.seed, TRAIN, TRAIN_STREAM), batch_size=self.micro_batch_size,
                          sampler=sampler, drop_last=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world_size()
        dataset = MQARDataset(self.spec, self.seed, VALIDATION, self.val_samples)
        subset = torch.utils.data.Subset(dataset, list(range(rank, self.val_samples, world)))
        return DataLoader(subset, batch_size=self.micro_batch_size, shuffle=False, num_workers=self.num_workers)
