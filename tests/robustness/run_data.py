"""Tiny labelled data for the run-folder and resume tests: two topic words among filler words, so a small model
learns something in a few steps."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = {"sport": ["match", "goal", "team", "coach", "league"], "tech": ["chip", "phone", "network", "data", "code"],
         "money": ["bank", "profit", "market", "rates", "shares"]}
FILLER = ["the", "a", "of", "and", "today", "new", "said", "after", "with", "people", "year"]


def write_labelled_csv(path: Path, n: int, rng: random.Random, labels: int = 3) -> str:
    """``n`` rows of ``label,text`` over the first ``labels`` topics; returns the path as a str."""
    topics = sorted(WORDS)[:labels]
    rows = ["label,text"]
    for _ in range(n):
        label = rng.choice(topics)
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))] + rng.sample(WORDS[label], 2)
        rng.shuffle(words)
        rows.append(f"{label},{' '.join(words)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)
