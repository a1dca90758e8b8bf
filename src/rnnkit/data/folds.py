"""Stratified K-fold assignment: every example in exactly one fold, each class spread evenly.

Used to cross-fit a classifier ensemble (``ClassifierConfig.cross_fit``): member i trains on every fold
but i and early-stops on fold i, so all labelled data trains some member, and the members' predictions
on their own held-out folds give an out-of-fold estimate over every example instead of one small split.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence


def stratified_folds(labels: Sequence[Hashable], k: int, seed: int = 0) -> list[list[int]]:
    """``k`` lists of example indices (each sorted) that partition ``range(len(labels))``.

    Within each class the indices are shuffled with ``seed`` and dealt round-robin, continuing from
    fold to fold across classes, so fold sizes differ by at most one and so do a class's counts per fold.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2, got {k!r}")
    if len(labels) < k:
        raise ValueError(f"{len(labels)} examples cannot fill k={k} folds")
    by_class: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    slot = 0
    for label in sorted(by_class, key=str):
        members = by_class[label]
        rng.shuffle(members)
        for i in members:
            folds[slot % k].append(i)
            slot += 1
    return [sorted(fold) for fold in folds]
