"""Stratified folds: a partition, balanced sizes and classes, seeded."""

from collections import Counter

import pytest

from rnnkit.data import stratified_folds, stratified_holdout


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


def test_holdout_is_stratified_and_keeps_every_class_in_training():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 9 + ["d"] * 2 + ["e"]
    held = stratified_holdout(labels, 0.1, seed=1)
    assert len(held) == round(len(labels) * 0.1) == len(set(held))
    counts = Counter(labels[i] for i in held)
    assert counts["a"] == 5 and counts["b"] == 3  # each class's share
    assert counts["e"] == 0  # a class seen once stays in training
    kept = Counter(labels) - counts
    assert set(kept) == set(labels)  # no class gives up its last example
    assert held == stratified_holdout(labels, 0.1, seed=1) and held != stratified_holdout(labels, 0.1, seed=2)


def test_holdout_of_a_tiny_set_takes_at_least_one():
    assert len(stratified_holdout(["a", "a", "b"], 0.1)) == 1
    assert stratified_holdout(["a", "b", "c"], 0.5) == []  # only singletons: nothing can be held out
    with pytest.raises(ValueError, match="fraction must be a number in \\(0, 1\\), got 1.0"):
        stratified_holdout(["a", "a"], 1.0)
