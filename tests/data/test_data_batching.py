"""Bucket sampler, padding and the encoded data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data import (
    BucketBatchSampler,
    DataError,
    EncodedDataset,
    Example,
    Vocabulary,
    WordTokenizer,
    pad_batch,
    padding_fraction,
)


def skewed_lengths(n=2000, seed=0) -> list[int]:
    # Log-normal, like document lengths: many short texts, a long tail.
    return (np.random.default_rng(seed).lognormal(4.0, 1.0, size=n).astype(int) + 1).tolist()


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_exactly_once_per_epoch(shuffle):
    lengths = skewed_lengths(1003)
    sampler = BucketBatchSampler(lengths, batch_size=32, shuffle=shuffle, bucket_factor=4)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 32  # ceil(1003 / 32)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(1003))
        assert sorted(len(b) for b in batches)[1:] == [32] * 31  # one short batch at most
        for b in batches:  # decreasing length inside each batch
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_deterministic_per_seed_and_epoch():
    lengths = skewed_lengths(500)
    a, b = BucketBatchSampler(lengths, 16, seed=3), BucketBatchSampler(lengths, 16, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(BucketBatchSampler(lengths, 16, seed=4)) != list(BucketBatchSampler(lengths, 16, seed=3))
    fixed = BucketBatchSampler(lengths, 16, shuffle=False)
    first = list(fixed)
    fixed.set_epoch(5)
    assert list(fixed) == first


def test_buckets_pad_less_than_random_batches():
    lengths = skewed_lengths(2000)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(lengths))
    random_batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    random_padding = padding_fraction(lengths, random_batches)
    bucketed = BucketBatchSampler(lengths, 32, bucket_factor=50).padding_fraction()
    fully_sorted = padding_fraction(lengths, [np.argsort(lengths)[i:i + 32] for i in range(0, len(lengths), 32)])
    # Measured: random 0.80, buckets 0.19, a global sort (the floor, no randomness left) 0.09.
    assert random_padding > 0.7
    assert fully_sorted < bucketed < random_padding / 3
    # bucket_factor=1 sorts inside each batch only: no gain over random batches.
    assert BucketBatchSampler(lengths, 32, bucket_factor=1).padding_fraction() > 0.7


def test_padding_fraction_by_hand():
    assert padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(2 / 10)


def test_sampler_argument_checks():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        BucketBatchSampler([1, 2], 0)
    with pytest.raises(ValueError, match="lengths must be >= 0, got -1 at index 1"):
        BucketBatchSampler([1, -1], 2)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        BucketBatchSampler([1, 2], 2).set_epoch(-1)


def test_pad_batch_shapes_truncation_and_checks():
    x, lengths = pad_batch([[5, 6, 7], [8], torch.tensor([9, 10])], pad_id=0)
    assert x.dtype == torch.long and lengths.dtype == torch.long
    assert x.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]
    x, lengths = pad_batch([[1, 2, 3, 4], [5]], pad_id=-1, max_len=2)
    assert x.tolist() == [[1, 2], [5, -1]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match=r"sequences\[1\] must be a non-empty 1-D sequence"):
        pad_batch([[1], []])
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        pad_batch([[1]], max_len=0)


def test_encoded_dataset_round_trip():
    examples = [Example("Good film, good cast.", "pos", "r.csv:2"), Example("Dull.", "neg", "r.csv:3"),
                Example("Good!", "pos", "r.csv:4")]
    tok = WordTokenizer()
    vocab = Vocabulary.build([tok.tokenize(e.text) for e in examples], min_freq=2)
    data = EncodedDataset.from_examples(examples, tok, vocab, labels=["neg", "pos"])
    assert data.lengths == [6, 2, 2]
    assert data.label_ids == [1, 0, 1]
    good = vocab.token_id("good")
    assert data[0] == ([good, vocab.unk_id, vocab.token_id(","), good, vocab.unk_id, vocab.token_id(".")], 1)
    x, lengths, y = data.batch([2, 0])
    assert x.shape == (2, 6) and lengths.tolist() == [2, 6] and y.tolist() == [1, 1]
    assert x[0, 2:].eq(vocab.pad_id).all()
    sampler = BucketBatchSampler(data.lengths, batch_size=2)
    assert sorted(i for b in sampler for i in b) == [0, 1, 2]


def test_encoded_dataset_unseen_label_is_located():
    examples = [Example("a", "pos", "t.csv:2"), Example("b", "meh", "t.csv:3")]
    vocab = Vocabulary.build([["a", "b"]])
    with pytest.raises(DataError, match=r"t.csv, line 3, field 'label': label 'meh' was not seen"):
        EncodedDataset.from_examples(examples, WordTokenizer(), vocab, labels=["neg", "pos"])
    unlabelled = EncodedDataset.from_examples(examples, WordTokenizer(), vocab)
    assert unlabelled.label_ids is None and unlabelled.batch([0, 1])[2] is None
