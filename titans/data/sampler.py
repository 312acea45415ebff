"""A resumable, rank-sharded, infinite training sampler.

The global sample stream is a function of (seed, global sample index g) only:
    epoch, position = divmod(g, num_samples);  stream[g] = permutation(seed, epoch)[position]
Rank r of world_size takes the indices g >= start_index with g % world_size == r. Starting at
start_index = optimizer_steps * accumulate_grad_batches * batch_size * world_size therefore continues
a run with exactly the batches it would have seen next, which is what makes `ckpt_path=last` exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def epoch_permutation(num_samples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    if not shuffle:
        return np.arange(num_samples)
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


class ResumableSampler(Sampler[int]):
    """Infinite stream of dataset indices: every epoch a seeded permutation; starts at `start_index`
    (a global sample index) and yields only this rank's share (every world_size-th global index)."""

    def __init__(self, num_samples: int, seed: int = 0, start_index: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        if num_samples <= 0:
            raise ValueError(f"ResumableSampler needs a non-empty dataset (num_samples={num_samples})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self.num_samples, self.seed, self.start_index = num_samples, seed, start_index
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle

    def __iter__(self) -> Iterator[int]:
        g = self.start_index + (self.rank - self.start_index) % self.world_size
        epoch, perm = None, None
        while True:
            e, position = divmod(g, self.num_samples)
            if not self.shuffle:  # the identity order: no permutation to build (streams may be huge)
                yield position
                g += self.world_size
                continue
            if e != epoch:
                epoch, perm = e, epoch_permutation(self.num_samples, self.seed, e, self.shuffle)
            yield int(perm[position])
            g += self.world_size
