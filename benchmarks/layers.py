"""Tokens/s of every rnnkit back end beside torch.nn, measured interleaved in one process.

    .venv/bin/python benchmarks/layers.py            # a few configurations, ~1-2 minutes
    .venv/bin/python benchmarks/layers.py --repeats 7

Each row: one configuration and mode (inference: no_grad forward; training: forward +
backward). Columns: tokens/s of torch.nn and of each back end, and each back end's
ratio to torch.nn (medians over rounds; every round times each contender once, in turn).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnkit

CONFIGS = [  # (cell, batch, hidden, layers, bidirectional, with random lengths)
    ("lstm", 16, 128, 1, False, False),
    ("gru", 16, 128, 1, False, False),
    ("rnn", 16, 128, 1, False, False),
    ("lstm", 32, 128, 2, True, True),
    ("gru", 32, 128, 2, True, True),
]
SEQ, INPUT = 50, 64
MAKERS = {"lstm": (rnnkit.LSTM, nn.LSTM), "gru": (rnnkit.GRU, nn.GRU), "rnn": (rnnkit.RNN, nn.RNN)}


def _timed(fn, tokens: int) -> float:
    start = time.perf_counter()
    fn()
    return tokens / (time.perf_counter() - start)


def _call(module, x, lengths, ours, training):
    if lengths is None:
        out = module(x)[0]
    elif ours:
        out = module(x, lengths=lengths)[0]
    else:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out = nn.utils.rnn.pad_packed_sequence(module(packed)[0])[0]
    if training:
        out.sum().backward()


def bench(cell, batch, hidden, layers, bidir, varlen, repeats):
    kw = dict(input_size=INPUT, hidden_size=hidden, num_layers=layers, bidirectional=bidir)
    torch_layer = MAKERS[cell][1](**kw)
    contenders = {"torch.nn": (torch_layer, False)}
    for name in rnnkit.available_backends():
        layer = MAKERS[cell][0](backend=name, **kw)
        layer.load_state_dict(torch_layer.state_dict())
        contenders[name] = (layer, True)
    x = torch.randn(SEQ, batch, INPUT)
    lengths = torch.randint(SEQ // 5, SEQ + 1, (batch,)) if varlen else None
    real_tokens = int(lengths.sum()) if varlen else SEQ * batch
    rows = []
    for training in (False, True):
        speeds = {name: [] for name in contenders}
        for _ in range(repeats + 1):  # the first round warms up and is dropped
            for name, (module, ours) in contenders.items():
                xi = x.clone().requires_grad_(training)
                with torch.set_grad_enabled(training):
                    run = lambda m=module, o=ours, xi=xi, tr=training: _call(m, xi, lengths, o, tr)  # noqa: E731
                    speeds[name].append(_timed(run, real_tokens))
        med = {name: statistics.median(v[1:]) for name, v in speeds.items()}
        rows.append((f"{cell} B{batch} H{hidden} L{layers}{' bi' if bidir else ''}{' varlen' if varlen else ''}",
                     "train" if training else "infer", med))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = rnnkit.available_backends()
    header = f"{'configuration':34} {'mode':5} {'torch.nn':>10} " + " ".join(f"{b:>10}" for b in backends) + " " + \
             " ".join(f"{b + '/nn':>12}" for b in backends)
    print(f"sequence {SEQ}, input {INPUT}, {args.threads} threads, tokens/s (real tokens), medians of {args.repeats}")
    print(header)
    for config in CONFIGS:
        for name, mode, med in bench(*config, args.repeats):
            base = med["torch.nn"]
            print(f"{name:34} {mode:5} {base:10.0f} " + " ".join(f"{med[b]:10.0f}" for b in backends) + " " +
                  " ".join(f"{med[b] / base:12.2f}" for b in backends), flush=True)


if __name__ == "__main__":
    main()
