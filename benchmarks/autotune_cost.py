"""What first-use tuning costs: ``auto``'s decision for each kind of ``benchmarks/engine.py``'s grid, timed.

Runs the tuner alone (no benchmark rounds) on the engine benchmark's 66 kinds (3 cells × infer/train × the
9 equal-length shapes and the 2 lengths shapes), each kind new to the process, and prints the seconds it
took in total (the decisions only: building the layers and inputs is not counted) and for the slowest
kind, with the load average. The decisions go to ``$RNNKIT_CACHE``: point
it at an empty folder (with the compiled kernels copied in, or they are built first) to time a first use.

Usage:  python benchmarks/autotune_cost.py [--threads N] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from engine import CELLS, INPUT, SEQ

from rnnkit.engine import autotune, resolve_backend


def kinds():
    """(cell, training, batch, hidden, lengths or None): the engine benchmark's rows."""
    for cell in CELLS:
        for training in (False, True):
            for batch in (1, 16, 64):
                for hidden in (128, 256, 512):
                    yield cell, training, batch, hidden, None
            for batch in (16, 64):
                yield cell, training, batch, 256, torch.randint(10, 201, (batch,),
                                                                generator=torch.Generator().manual_seed(0))


def tune_all() -> tuple[float, float, dict]:
    autotune.forget()
    for name in os.listdir(autotune.cache.directory()):
        if name.startswith("autotune-"):
            os.unlink(autotune.cache.directory() / name)
    slowest, total, picks = 0.0, 0.0, {}
    for cell, training, batch, hidden, lengths in kinds():
        layer = CELLS[cell][1](INPUT, hidden).train(training)
        x = torch.randn(SEQ if lengths is None else 200, batch, INPUT)
        began = time.perf_counter()
        with torch.set_grad_enabled(training):
            chosen = resolve_backend("auto", layer, x, lengths).name
        took = time.perf_counter() - began
        slowest, total = max(slowest, took), total + took
        key = f"{cell} {'train' if training else 'infer'} {batch} {hidden}{' lengths' if lengths is not None else ''}"
        picks[key] = chosen
    return total, slowest, picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--repeat", type=int, default=1, help="times to tune every kind afresh")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        total, slowest, picks = tune_all()
        counts = {b: list(picks.values()).count(b) for b in sorted(set(picks.values()))}
        provisional = sum(not entry.get("settled", True) for entry in autotune.table().values())
        print(f"first-use tuning {total:.2f} s for {len(picks)} kinds (slowest kind {slowest * 1e3:.0f} ms), "
              f"{torch.get_num_threads()} threads, load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
              f"picks {counts}, {provisional} provisional", flush=True)


if __name__ == "__main__":
    main()
