"""Language-model pre-training step time on BBC-sized shapes: full softmax against the sampled one.

    .venv/bin/python benchmarks/pretrain_lm.py [--steps 6] [--vocab 17254]

The default classifier's encoder (GloVe-sized embedding 50, bidirectional GRU 128) read as a forward language model
(``EncoderLM``, tied output through a 128 -> 50 projection), one step = forward, loss, backward and AdamW on a batch
of 32 streams x 70 tokens, one thread. Rows interleave in one process, so their ratios hold on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.encoder_lm import EncoderLM, SampledSoftmax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=17254, help="BBC News' vocabulary with the default options")
    args = parser.parse_args()
    torch.set_num_threads(1)
    V = args.vocab
    torch.manual_seed(0)
    lm = EncoderLM(Encoder(ClassifierConfig(), V), "forward")
    opt = torch.optim.AdamW(lm.parameters(), 1e-3)
    # Zipf-like word counts, as a text's.
    counts = (1e6 / torch.arange(1, V + 1)).long()
    x = torch.multinomial(counts.float(), 32 * 70, replacement=True).view(32, 70)
    y = torch.multinomial(counts.float(), 32 * 70, replacement=True).view(32, 70)
    losses = {"full softmax": lambda: F.cross_entropy(lm(x)[0].reshape(-1, V), y.reshape(-1))}
    for k in (1024, 4096):
        sampler = SampledSoftmax(counts, k)
        losses[f"sampled, {k}"] = lambda s=sampler: s.loss(lm.features(x)[0].reshape(-1, 50), y.reshape(-1),
                                                          lm.embedding.weight, lm.head.bias)
    times = {name: [] for name in losses}
    for step in range(args.steps + 1):
        for name, loss in losses.items():
            start = time.perf_counter()
            opt.zero_grad()
            loss().backward()
            opt.step()
            if step:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    full = statistics.median(times["full softmax"])
    print(f"vocabulary {V}, batch 32 x 70 tokens, one thread (median of {args.steps} steps)")
    print("| loss | ms / step | tokens / s | speed-up |\n|---|---|---|---|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {t * 1000:.0f} | {32 * 70 / t:,.0f} | {full / t:.1f}x |")


if __name__ == "__main__":
    main()
