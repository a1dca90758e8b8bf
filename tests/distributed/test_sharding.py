"""Each rank's share of the global batches: every example once, the same number of steps on every rank."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data import BucketBatchSampler, StreamBatcher
from rnnkit.data.distributed import PaddingBatch, ShardedBatches, ShardedStreams


@pytest.mark.parametrize("size", [2, 3, 4])
def test_sharded_buckets_split_each_global_batch(size):
    lengths = [(7 * i) % 13 + 1 for i in range(23)]
    sampler = BucketBatchSampler(lengths, 5, seed=3)
    shards = [ShardedBatches(BucketBatchSampler(lengths, 5, seed=3), rank, size) for rank in range(size)]
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        for shard in shards:
            shard.set_epoch(epoch)
        per_rank = [list(shard) for shard in shards]
        assert all(len(batches) == len(sampler) for batches in per_rank)  # same steps everywhere
        for step, batch in enumerate(sampler.batches()):
            real = [i for batches in per_rank for i in batches[step] if not isinstance(batches[step], PaddingBatch)]
            assert sorted(real) == sorted(batch)  # every member once, on one rank
            padded = [batches[step] for batches in per_rank if isinstance(batches[step], PaddingBatch)]
            assert len(padded) == max(0, size - len(batch))
            assert all(p.padding and len(p) == 1 and p[0] in batch for p in padded)


def test_sharded_streams_give_each_rank_its_rows():
    ids = torch.arange(200)
    whole = list(StreamBatcher(ids, 6, 7, random_length=True, seed=1))
    for rank in range(3):
        mine = list(ShardedStreams(StreamBatcher(ids, 6, 7, random_length=True, seed=1), rank, 3))
        assert len(mine) == len(whole)
        for (x, y), (wx, wy) in zip(mine, whole, strict=True):
            assert torch.equal(x, wx[rank::3]) and torch.equal(y, wy[rank::3])


def test_sharding_arguments_are_checked():
    with pytest.raises(ValueError, match=r"batch_size=2 streams cannot be shared by 3 processes"):
        ShardedStreams(StreamBatcher(torch.arange(50), 2, 5), 0, 3)
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, size=2\), got 2"):
        ShardedBatches(BucketBatchSampler([3, 4], 2), 2, 2)
