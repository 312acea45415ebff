"""MQARDataModule: multi-query associative recall (titans.tasks.mqar) for ``train.py`` (``data=mqar``), generated on
the fly: an endless training stream and a fixed validation set, resumable at the exact next sample."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from titans.data.base import TokenDataModule
from titans.data.sampler import ResumableSampler
from titans.models.loss import IGNORE_INDEX
from titans.tasks.mqar import BOS, TRAIN, VALIDATION, MQARSpec, mqar_sample

#: the virtual size of the training stream (samples are generated, not stored)
TRAIN_STREAM = 2**40


class MQARDataset(Dataset):
    """``size`` samples of one split; item i is ``mqar_sample(spec, seed, split, i)``, or, for the first
    ``short_samples`` items, ``mqar_sample(spec.short, ...)`` (the length warm-up: the same task without gap or
    filler, so the first batches are short sequences)."""

    def __init__(self, spec: MQARSpec, seed: int, split: int, size: int, short_samples: int = 0):
        self.spec, self.seed, self.split, self.size = spec, seed, split, size
        self.short_samples = short_samples

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        spec = self.spec.short if index < self.short_samples else self.spec
        return mqar_sample(spec, self.seed, self.split, index)


class MQARDataModule(TokenDataModule):
    """MQAR batches for ``train.py`` (``data=mqar``): an endless training stream and a fixed validation set.

    The model's vocabulary is ``vocab_size`` (1 + 2 * num_keys + num_filler); no tokenizer is involved
    (a ``tokenizer`` argument is accepted and ignored, so the pipeline can pass one).

    ``warmup_steps``: a length warm-up. The first ``warmup_steps`` optimizer steps train on the short layout
    (``MQARSpec.short``: the queries right after the pairs, no gap, no filler); later steps and the validation
    set use the configured layout. A model first learns to recall where that is easy, then to carry the pairs
    across the gap (without it, attention at width 64 stays on the 0.33 plateau for thousands of steps).
    """

    def __init__(self, seq_len: int = 128, num_pairs: int = 8, num_queries: int | None = None, gap: int = 0,
                 num_keys: int = 64, num_filler: int = 16, batch_size: int = 64, seed: int = 0,
                 val_samples: int = 1024, num_workers: int = 0, warmup_steps: int = 0, tokenizer=None):
        super().__init__()
        self.spec = MQARSpec(seq_len=seq_len, num_pairs=num_pairs, num_queries=num_queries, gap=gap,
                             num_keys=num_keys, num_filler=num_filler)
        if batch_size < 1 or val_samples < 1:
            raise ValueError(f"mqar: batch_size and val_samples must be >= 1, got {batch_size} and {val_samples}")
        if warmup_steps < 0:
            raise ValueError(f"mqar: warmup_steps must be >= 0 (0 = no length warm-up), got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.val_samples, self.num_workers = val_samples, num_workers
        self.tokenizer, self.tokenizer_config = None, None

    @property
    def vocab_size(self) -> int:
        return self.spec.vocab_size

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world_size()
        sampler = ResumableSampler(TRAIN_STREAM, seed=self.seed, start_index=self.train_start_index(),
                                   rank=rank, world_size=world, shuffle=False)
        dataset = MQARDataset(self.spec, self.seed, TRAIN, TRAIN_STREAM,
                              short_samples=self.warmup_steps * self.samples_per_step())
        return DataLoader(dataset, batch_size=self.batch_size,
                          sampler=sampler, drop_last=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world_size()
        dataset = MQARDataset(self.spec, self.seed, VALIDATION, self.val_samples)
        subset = torch.utils.data.Subset(dataset, list(range(rank, self.val_samples, world)))
        return DataLoader(subset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)


__all__ = ["MQARDataModule", "MQARDataset", "MQARSpec", "mqar_sample", "BOS", "IGNORE_INDEX", "TRAIN", "VALIDATION",
           "TRAIN_STREAM"]
