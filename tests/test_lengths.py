"""rnnkit.lengths: the one normal form of a call's lengths that every back end and the tuner share."""

import torch

from rnnkit.lengths import full_as_dense, rank


def test_full_lengths_become_dense():
    assert full_as_dense(torch.tensor([5, 5, 5]), 5) is None
    assert full_as_dense(None, 5) is None
    assert full_as_dense(torch.zeros(0, dtype=torch.int64), 5) is None  # an empty batch has nothing to mask


def test_partial_lengths_stay():
    lengths = torch.tensor([5, 3, 5])
    assert full_as_dense(lengths, 5) is lengths


def test_rank_is_longest_first_ties_in_batch_order():
    assert rank(torch.tensor([2, 5, 3, 5, 2])).tolist() == [1, 3, 2, 0, 4]
