"""Multi-query associative recall (MQAR), generated on the fly, with an optional gap.

The task of Zoology (Arora et al. 2023, "Zoology: measuring and improving recall in efficient language
models"): a sequence first lists ``num_pairs`` key-value pairs ``k1 v1 k2 v2 ...``, then asks for keys again;
after each query key the model must produce that key's value. Keys come from one band of the vocabulary and
values from another, both drawn without replacement within a sequence, so a pair can only be answered by
recalling it. Loss and accuracy count the value positions of the queries only (every other label is IGNORE_INDEX).

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

import numpy as np
import torch

from titans.models.loss import IGNORE_INDEX

BOS = 0
#: split ids of the seed sequences: the training stream and the validation set never share a sample
TRAIN, VALIDATION = 0, 1


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

    @property
    def short(self) -> "MQARSpec":
        """The same pairs and queries with no gap and no filler: the queries follow the pairs at once
        (1 + 2 * num_pairs + 2 * queries tokens). The length warm-up of the training stream uses it."""
        return MQARSpec(seq_len=1 + 2 * self.num_pairs + 2 * self.queries, num_pairs=self.num_pairs,
                        num_queries=self.num_queries, gap=0, num_keys=self.num_keys, num_filler=self.num_filler)


def mqar_sample(spec: MQARSpec, seed: int, split: int, index: int) -> dict[str, torch.Tensor]:
    """One sequence: input_ids [seq_len] and labels [seq_len] (the value at each query's value position,
    IGNORE_INDEX elsewhere; aligned with input_ids, the model shifts them)."""
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
