"""Length-bucketed batches for classification, and padding them into tensors.

Random batches of texts with very different lengths waste most of each padded
tensor on ``<pad>``. ``BucketBatchSampler`` keeps the randomness but groups
similar lengths: it shuffles the indices, cuts them into chunks of
``batch_size * bucket_factor``, sorts each chunk by length, cuts it into batches
and finally shuffles the order of the batches. Each batch therefore holds
neighbours in length, while which examples meet and the batch order still change
every epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from rnnkit.validation import check_nonnegative_int, check_positive_int


def _check_lengths(lengths) -> np.ndarray:
    array = np.asarray(lengths)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"lengths must be a 1-D sequence of ints, got {type(lengths).__name__} of dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"lengths must be >= 0, got {int(array.min())} at index {int(array.argmin())}")
    return array.astype(np.int64)


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Fraction of the padded tensors' cells that are padding.

    Each batch is padded to its longest member: padding = sum over batches of
    ``len(batch) * max_length - sum(lengths)``, divided by all cells.
    """
    lengths = _check_lengths(lengths)
    cells = real = 0
    for batch in batches:
        members = lengths[np.asarray(batch, dtype=np.int64)]
        if members.size:
            cells += int(members.max()) * members.size
            real += int(members.sum())
    return 1.0 - real / cells if cells else 0.0


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices with similar lengths; every index exactly once per epoch.

    Args:
        lengths: length of each example (e.g. ``EncodedDataset.lengths``).
        batch_size: examples per batch; only the last batch of an epoch may be smaller.
        shuffle: shuffle examples and batch order (training). ``False`` gives one fixed
            order -- chunks in index order, each sorted by length, batches in order --
            which still pads little, for evaluation.
        seed: base seed; the shuffle of epoch ``e`` depends only on ``(seed, e)``.
        bucket_factor: batches per sorting chunk. Larger sorts more globally (less padding,
            batches less random); 1 sorts within each batch only (no padding gain).

    Within a batch, indices are ordered by decreasing length (handy for packing).
    Use as ``DataLoader(dataset, batch_sampler=sampler)`` or iterate directly, and call
    ``set_epoch(e)`` before each epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 bucket_factor: int = 50):
        super().__init__()
        self.lengths = _check_lengths(lengths)
        if self.lengths.size == 0:
            raise ValueError("lengths must not be empty: there is nothing to batch")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.bucket_factor = check_positive_int("bucket_factor", bucket_factor)
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        check_nonnegative_int("seed", seed)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle for ``epoch`` (deterministic given ``seed``)."""
        check_nonnegative_int("epoch", epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.lengths.size // self.batch_size)

    def state_dict(self) -> dict:
        """What fixes the order of batches: the epoch and seed (batch order is a function of them), and a
        fingerprint of the lengths and settings, so a resumed run can tell it is given the same data."""
        return {"epoch": self.epoch, "seed": self.seed, "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Select the saved epoch; ValueError if the data or settings differ from the saved sampler's."""
        check_same_data(state, self._fingerprint(), self.seed)
        self.set_epoch(state["epoch"])

    def _fingerprint(self) -> str:
        settings = np.asarray([self.batch_size, self.bucket_factor, int(self.shuffle)], dtype=np.int64)
        return hashlib.sha256(self.lengths.tobytes() + settings.tobytes()).hexdigest()[:16]

    def batches(self) -> list[list[int]]:
        """This epoch's batches (what iterating yields)."""
        n = self.lengths.size
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        chunk = self.batch_size * self.bucket_factor
        batches = []
        for start in range(0, n, chunk):
            members = order[start:start + chunk]
            # Stable sort on -length: ties keep the shuffled order, so they still mix.
            members = members[np.argsort(-self.lengths[members], kind="stable")]
            batches.extend(members[i:i + self.batch_size].tolist() for i in range(0, members.size, self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def padding_fraction(self) -> float:
        """Padding fraction of this epoch's batches (see ``padding_fraction``)."""
        return padding_fraction(self.lengths, self.batches())


def check_same_data(state: dict, fingerprint: str, seed: int) -> None:
    """A sampler's saved ``state_dict`` must describe the same data and seed to be resumed."""
    if state.get("fingerprint") != fingerprint:
        raise ValueError("cannot resume: the training data (or batch settings) differ from the saved run's")
    if state.get("seed") != seed:
        raise ValueError(f"cannot resume: the sampler's seed is {seed}, the saved run's was {state.get('seed')}")


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0, max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Pad id sequences into a batch-first ``(B, T)`` LongTensor and their ``(B,)`` lengths.

    Args:
        sequences: token ids per example (lists or 1-D tensors), each non-empty -- the
            recurrent layers need at least one step per sequence.
        pad_id: id written after each sequence's end.
        max_len: keep only the first ``max_len`` ids of longer sequences.

    Returns:
        ``(ids, lengths)``: ``T`` is the longest (truncated) length; ``lengths`` is a CPU
        int64 tensor in the input order, as ``rnnkit`` layers expect (they accept any order).
    """
    if len(sequences) == 0:
        raise ValueError("sequences must hold at least one sequence, got none")
    if isinstance(pad_id, bool) or not isinstance(pad_id, int):
        raise TypeError(f"pad_id must be an int, got {pad_id!r}")
    if max_len is not None:
        check_positive_int("max_len", max_len)
    rows = []
    for i, seq in enumerate(sequences):
        row = torch.as_tensor(seq, dtype=torch.long) if not isinstance(seq, Tensor) else seq.long()
        if row.dim() != 1 or row.numel() == 0:
            raise ValueError(f"sequences[{i}] must be a non-empty 1-D sequence of ids, got shape {tuple(row.shape)}")
        rows.append(row[:max_len] if max_len is not None else row)
    lengths = torch.tensor([r.numel() for r in rows], dtype=torch.long)
    out = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : row.numel()] = row
    return out, lengths
