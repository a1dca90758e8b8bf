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


def stratified_holdout(labels: Sequence[Hashable], fraction: float, seed: int = 0) -> list[int]:
    """Sorted indices of a validation split holding about ``fraction`` of each class.

    The total is ``round(len(labels) * fraction)`` (at least 1): each class first gets the whole part of its
    share, the rest goes to the largest remainders. A class never gives up its last example, so a class seen
    once stays in training (a random split could move it to validation, where it would look unseen).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    by_class: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    rng = random.Random(seed)
    order = sorted(by_class, key=str)
    for label in order:
        rng.shuffle(by_class[label])
    share = {label: len(by_class[label]) * fraction for label in order}
    quota = {label: min(int(share[label]), len(by_class[label]) - 1) for label in order}
    short = max(1, round(len(labels) * fraction)) - sum(quota.values())
    for label in sorted(order, key=lambda c: (-(share[c] - int(share[c])), -len(by_class[c]), str(c))):
        if short <= 0:
            break
        if quota[label] < len(by_class[label]) - 1:
            quota[label] += 1
            short -= 1
    return sorted(i for label in order for i in by_class[label][:quota[label]])
