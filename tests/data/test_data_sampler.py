"""The resumable sampler: a pure function of (seed, global sample index), sharded by rank."""

from __future__ import annotations

import itertools

import pytest

from titans.data import ResumableSampler


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_each_epoch_is_a_seeded_permutation_and_epochs_differ():
    stream = take(ResumableSampler(10, seed=3), 30)
    epochs = [stream[0:10], stream[10:20], stream[20:30]]
    for epoch in epochs:
        assert sorted(epoch) == list(range(10))
    assert len({tuple(e) for e in epochs}) == 3  # every epoch has its own order
    assert take(ResumableSampler(10, seed=3), 30) == stream
    assert take(ResumableSampler(10, seed=4), 30) != stream


@pytest.mark.parametrize("start", [0, 1, 7, 10, 23])
def test_stream_from_index_n_is_the_tail_of_the_stream_from_zero(start):
    full = take(ResumableSampler(10, seed=1), 60)
    assert take(ResumableSampler(10, seed=1, start_index=start), 60 - start) == full[start:]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("start", [0, 6, 11])
def test_ranks_partition_the_stream(world_size, start):
    full = take(ResumableSampler(7, seed=2), 80)
    per_rank = [take(ResumableSampler(7, seed=2, start_index=start, rank=r, world_size=world_size), 20)
                for r in range(world_size)]
    for g in range(start, start + 20 * world_size):
        rank, k = g % world_size, (g - start) // world_size
        assert per_rank[rank][k] == full[g]


def test_unshuffled_stream_is_sequential():
    assert take(ResumableSampler(4, shuffle=False, start_index=2), 6) == [2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("kwargs", [dict(num_samples=0), dict(num_samples=5, rank=2, world_size=2),
                                    dict(num_samples=5, start_index=-1)])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ResumableSampler(**kwargs)
