"""What the n-gram path costs a training step: the default model, and the model with ``--ngrams logits|features``
whose hashed table is updated lazily (sparse gradient, SparseAdam on the rows of the batch) or, as before,
densely (AdamW over every row at every step). Steps of all variants interleaved in one process.

    .venv/bin/python benchmarks/ngram_step.py [--steps 12]

Shapes: tweet-like (32 texts of 20 tokens, vocabulary 20k, 16 classes) and BBC-like (32 x 400, 17k, 5 classes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig
from rnnkit.training import TrainConfig, make_optimizer
from rnnkit.training.sparse import clip_grad_norm

SHAPES = {"tweet-like": (20, 20_000, 16), "bbc-like": (400, 17_000, 5)}


def variants(vocab: int, classes: int) -> dict:
    out = {}
    for name, ngrams, sparse in (("none", "none", None), ("logits sparse", "logits", True),
                                 ("logits dense", "logits", False), ("features sparse", "features", True),
                                 ("features dense", "features", False)):
        torch.manual_seed(0)
        net = RNNClassifier(ClassifierConfig(ngrams=ngrams), vocab, classes)
        if sparse is False:
            net.ngrams.table.sparse = False  # the table as it was: a dense gradient, AdamW on every row
        out[name] = (net, make_optimizer(net, TrainConfig()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print("| shape | variant | median step ms | ratio to none |")
    print("|---|---|---|---|")
    for shape, (length, vocab, classes) in SHAPES.items():
        nets = variants(vocab, classes)
        ids, lengths = torch.randint(1, vocab, (32, length)), torch.full((32,), length)
        labels = torch.randint(0, classes, (32,))
        times = {name: [] for name in nets}
        for _ in range(args.steps):
            for name, (net, opt) in nets.items():
                start = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(ids, lengths), labels).backward()
                clip_grad_norm(net.parameters(), 1.0)  # as the trainer does
                opt.step()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["none"][2:])
        for name, t in times.items():
            ms = statistics.median(t[2:])
            print(f"| {shape} | {name} | {ms * 1e3:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
