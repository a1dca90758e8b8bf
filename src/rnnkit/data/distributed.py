"""Each rank's share of the global batches, with every rank taking the same number of steps.

``torch.utils.data.DistributedSampler`` deals examples, not length buckets, and gives no guarantee about
padding within a batch. Here every rank builds the *same* list of global batches (same seed, same epoch:
exactly the batches one process would train on) and takes its part of each:

* ``ShardedBatches``: index batches (classification). Rank r takes members r, r+N, ... of each global batch
  (sorted by length, so all ranks get similar lengths). A global batch with fewer members than ranks leaves
  some ranks none; they get a ``PaddingBatch`` (one real member, ``padding = True``) which the trainer
  weights zero, so no rank skips a step and waits forever in the gradient all-reduce.
* ``ShardedStreams``: language-model windows. Rank r takes streams r, r+N, ... of each ``(B, t)`` window,
  so the hidden state it carries is that of its own streams, as in one process.

The global batch, and so the learning-rate schedule sized from ``len()``, do not depend on N.
"""

from __future__ import annotations

from collections.abc import Iterator

from rnnkit.validation import check_positive_int


class PaddingBatch(list):
    """A stand-in batch that keeps a rank in step with the others; the trainer weights its loss zero."""

    padding = True


def _check_rank(rank: int, size: int) -> None:
    check_positive_int("size", size)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < size:
        raise ValueError(f"rank must be an int in [0, size={size}), got {rank!r}")


def shard(batch: list[int], rank: int, size: int) -> list[int]:
    """Rank ``rank``'s members of one global batch; a ``PaddingBatch`` if there are none left for it."""
    mine = batch[rank::size]
    return mine if mine else PaddingBatch(batch[-1:])


class _Shard:
    """What a rank's share passes on to the global batches it is cut from: epoch, length and saved state."""

    def __init__(self, source, rank: int, size: int):
        _check_rank(rank, size)
        self.source, self.rank, self.size = source, rank, size

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)

    def state_dict(self) -> dict:
        """The global batches' state: every rank's share follows from it (a resumed run keeps its world size)."""
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state)

    def __len__(self) -> int:
        return len(self.source)


class ShardedBatches(_Shard):
    """Rank ``rank``'s part of every batch of ``sampler`` (e.g. a ``BucketBatchSampler``) of global batches."""

    def __init__(self, sampler, rank: int, size: int):
        super().__init__(sampler, rank, size)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.source:
            yield shard(list(batch), self.rank, self.size)


class ShardedStreams(_Shard):
    """Rank ``rank``'s streams (rows r, r+N, ...) of every ``(x, y)`` window of a ``StreamBatcher``."""

    def __init__(self, batcher, rank: int, size: int):
        super().__init__(batcher, rank, size)
        if batcher.batch_size < size:
            raise ValueError(f"batch_size={batcher.batch_size} streams cannot be shared by {size} processes: "
                             f"give batch_size >= {size} (the global batch, split across the processes)")

    def __iter__(self):
        rows = slice(self.rank, None, self.size)
        for x, y in self.source:
            yield x[rows].contiguous(), y[rows].contiguous()
