"""Stratified folds: a partition, balanced sizes and classes, seeded."""

from collections import Counter

import pytest

from rnnkit.data import stratified_folds


def test_folds_partition_the_examples_with_balanced_sizes_and_classes():
    labels = ["a"] * 23 + ["b"] * 7 + ["c"] * 11
    folds = stratified_folds(labels, 4, seed=3)
    flat = sorted(i for fold in folds for i in fold)
    assert flat == list(range(len(labels)))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for label, total in Counter(labels).items():
        per_fold = [sum(labels[i] == label for i in fold) for fold in folds]
        assert sum(per_fold) == total and max(per_fold) - min(per_fold) <= 1


def test_folds_follow_the_seed():
    labels = [i % 3 for i in range(60)]
    assert stratified_folds(labels, 5, seed=1) == stratified_folds(labels, 5, seed=1)
    assert stratified_folds(labels, 5, seed=1) != stratified_folds(labels, 5, seed=2)


@pytest.mark.parametrize("k", [1, 0, 2.0, True])
def test_bad_fold_counts_are_named(k):
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        stratified_folds(["a", "b", "c"], k)


def test_too_few_examples():
    with pytest.raises(ValueError, match="cannot fill k=3"):
        stratified_folds(["a", "b"], 3)
