"""minGRU / minLSTM (scan and fused back ends) against rnnkit's GRU / LSTM (auto) and torch.nn's, in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mincells.py                   # hidden 384, B 1/16/64, T 128/512
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mincells.py --long            # adds T 2048 for B 1 and 16
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mincells.py --batches 64 --steps 128 --repeats 5
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mincells.py --batches 64 --steps 128 --threads 1 2 \
        --contenders MinGRU MinGRU-fused rnnkit.GRU --memory-batch 0      # the scan against the C++ scan

Speed: tokens/s (B·T per call) of one layer, input size = hidden size, inference (no_grad forward) and
training (forward + backward of out.sum()); medians over rounds, every round times each contender once in
turn (the first round warms up and is dropped), so a busy machine slows every contender alike.

Where the matrix products dominate (training, large B·T), the speed-up over a GRU of the same width is bounded
by their arithmetic: per token the minGRU layer multiplies 2H×D, the GRU 3H×D and 3H×H, a third at D = H.

Memory: the bytes autograd keeps for the backward of one training forward (every tensor saved by any
operation, counted once per storage through ``torch.autograd.graph.saved_tensors_hooks``), against T.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnkit

CONTENDERS = {  # name → maker(hidden)
    "MinGRU": lambda h: rnnkit.MinGRU(h, h, backend="scan"),
    "MinGRU-fused": lambda h: rnnkit.MinGRU(h, h, backend="fused"),
    "MinGRU-log": lambda h: rnnkit.MinGRU(h, h, backend="scan", form="log"),
    "MinLSTM": lambda h: rnnkit.MinLSTM(h, h, backend="scan"),
    "rnnkit.GRU": lambda h: rnnkit.GRU(h, h),
    "rnnkit.LSTM": lambda h: rnnkit.LSTM(h, h),
    "nn.GRU": lambda h: nn.GRU(h, h),
    "nn.LSTM": lambda h: nn.LSTM(h, h),
}


def sequence(batch: int, steps: int, hidden: int, batch_first: bool = False) -> torch.Tensor:
    """A random input: (T, B, hidden), or (B, T, hidden) with ``batch_first``."""
    return torch.randn(*((batch, steps) if batch_first else (steps, batch)), hidden)


def output(module, x):
    """The module's output sequence: the first of a tuple like torch.nn's, or the tensor a module returns alone."""
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def _run(module, x, training: bool) -> None:
    with torch.set_grad_enabled(training):
        out = output(module, x)
        if training:
            out.sum().backward()


def speeds(modules: dict, batch: int, steps: int, hidden: int, training: bool, repeats: int,
           batch_first: bool = False) -> dict[str, float]:
    x = sequence(batch, steps, hidden, batch_first)
    times = {name: [] for name in modules}
    for _ in range(repeats + 1):
        for name, module in modules.items():
            xi = x.clone().requires_grad_(training)
            start = time.perf_counter()
            _run(module, xi, training)
            times[name].append(time.perf_counter() - start)
    return {name: batch * steps / statistics.median(t[1:]) for name, t in times.items()}


def saved_bytes(module, batch: int, steps: int, hidden: int, batch_first: bool = False) -> int:
    """Bytes of the distinct storages autograd saves for one training forward."""
    seen: dict[int, int] = {}

    def pack(t):
        if t.layout == torch.strided and t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = sequence(batch, steps, hidden, batch_first).requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = output(module, x)
    out.sum().backward()
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    return max(sum(seen.values()) - params, 0)  # the weights are kept anyway: count what the sequence adds


def grid_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a speed grid (hidden size, batches, steps, T 2048, repeats), shared by the min-cell benchmarks."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--long", action="store_true", help="add T 2048 for batches up to 16")
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def grid(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(batch, steps) of every row the options ask for."""
    rows = [(b, t) for b in args.batches for t in args.steps]
    if args.long:
        rows += [(b, 2048) for b in args.batches if b <= 16 and 2048 not in args.steps]
    return rows


def main() -> None:
    parser = grid_parser(__doc__)
    parser.add_argument("--memory-batch", type=int, default=16, help="0: no memory table")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    args = parser.parse_args()
    torch.manual_seed(0)
    modules = {name: CONTENDERS[name](args.hidden) for name in args.contenders}
    rows = grid(args)
    names = list(modules)
    ratios = [n for n in ("MinGRU", "MinGRU-fused") if n in modules and "rnnkit.GRU" in modules]
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"tokens/s, one layer, hidden {args.hidden}, input {args.hidden}, {threads} thread(s), "
              f"torch {torch.__version__}")
        print(f"{'B':>3} {'T':>5} {'form':5} " + " ".join(f"{n:>12}" for n in names)
              + "".join(f"  {n + '/rnnkit.GRU':>23}" for n in ratios))
        for training in (True, False):
            for batch, steps in rows:
                got = speeds(modules, batch, steps, args.hidden, training, args.repeats)
                print(f"{batch:>3} {steps:>5} {'train' if training else 'infer':5} "
                      + " ".join(f"{got[n]:>12,.0f}" for n in names)
                      + "".join(f"  {got[n] / got['rnnkit.GRU']:>22.2f}x" for n in ratios), flush=True)
    if args.memory_batch == 0:
        return
    print(f"\nsaved for backward (MiB, batch {args.memory_batch}): one training forward")
    lengths = sorted({*args.steps, *([2048] if args.long else [])})
    print(f"{'T':>5} " + " ".join(f"{n:>12}" for n in names))
    for steps in lengths:
        row = [saved_bytes(modules[n], args.memory_batch, steps, args.hidden) / 2**20 for n in names]
        print(f"{steps:>5} " + " ".join(f"{v:>12.1f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
