"""Helpers of the run-folder and resume tests: tiny labelled data (two topic words among filler words, so a small
model learns something in a few steps), and a signal sent to this process in the middle of a training step."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from rnnkit.tasks.classification import ClassificationTask

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


def signal_during_step(monkeypatch, call: int, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to this process during classifier training step number ``call`` (handled once it ends)."""
    step, calls = ClassificationTask.train_step, []

    def signalling(self, model, batch):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), sig)
        return step(self, model, batch)

    monkeypatch.setattr(ClassificationTask, "train_step", signalling)
