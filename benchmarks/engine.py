"""Tokens per second of rnnkit's back ends against torch.nn, measured in one process, interleaved.

For each cell (simple RNN, GRU, LSTM) × mode (inference, training) × batch × hidden, with sequence 100
and input 128, one layer: torch.nn's module and rnnkit's layer (the same weights) run in alternating
rounds; each round times enough calls to fill ``--round-ms``; the table shows the median tokens/s of each
and the ratio to torch.nn (> 1 is faster). Training is forward + backward of the output's sum.

The header names the CPU (model, the flags that matter, cache sizes) and whether ``auto`` is timed on first use
(``RNNKIT_AUTOTUNE``); the summary gives the worst auto/torch.nn ratio over the grid and over the lengths rows,
and what first-use tuning cost in this process.

Extra rows:
  lengths  a batch of random lengths in [10, 200] given through ``lengths``, against torch.nn on the same
           batch padded to 200 (real tokens only are counted for both)
  extras   LayerNorm-LSTM training against plain LSTM training in the same engine (ratio = cost)
  compile  torch.compile(rnnkit layer) against torch.compile(torch.nn module), each compiled (inductor) and
           warmed up before timing; batch 1 and 16 at hidden 256 (the fused engine runs as the registered
           operators rnnkit::fused_recurrence there)

Usage:  python benchmarks/engine.py [--quick] [--backends fused,native,auto] [--sections plain,lengths,extras,compile]
                                    [--cells rnn,gru,lstm] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import rnnkit
from rnnkit.engine import autotune, machine

CELLS = {"rnn": (nn.RNN, rnnkit.RNN), "gru": (nn.GRU, rnnkit.GRU), "lstm": (nn.LSTM, rnnkit.LSTM)}
SEQ, INPUT = 100, 128


def _step(module, x, training: bool, **kw):
    if training:
        out, _ = module(x, **kw)
        out.sum().backward()
    else:
        with torch.no_grad():
            module(x, **kw)


def _calls_per_round(fn, round_s: float) -> int:
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    return max(1, int(round_s / max(took, 1e-6)))


def measure(fns: dict, tokens: int, rounds: int, round_s: float) -> dict[str, float]:
    """Median tokens/s of each callable, timed in alternating rounds."""
    reps = {name: _calls_per_round(fn, round_s) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            times[name].append((time.perf_counter() - start) / reps[name])
    return {name: tokens / statistics.median(t) for name, t in times.items()}


def _backend_fns(kit, x, training: bool, backends: list[str], **kw) -> dict:
    fns = {}
    for name in backends:
        def run(name=name):
            kit.backend = name
            _step(kit, x, training, **kw)
        fns[name] = run
    return fns


def compare(cell: str, training: bool, batch: int, hidden: int, backends: list[str], rounds: int, round_s: float,
            varlen: bool = False):
    """tokens/s of torch.nn and each back end (and which one ``auto`` picked).

    ``varlen``: a batch of random lengths in [10, 200] given through ``lengths``, against torch.nn on the
    same batch padded to 200; real tokens only are counted for both.
    """
    torch_cls, kit_cls = CELLS[cell]
    ref = torch_cls(INPUT, hidden).train(training)
    kit = kit_cls(INPUT, hidden).train(training)
    kit.load_state_dict(ref.state_dict())
    lengths = None
    if varlen:
        lengths = torch.randint(10, 201, (batch,), generator=torch.Generator().manual_seed(0))
        x = torch.randn(200, batch, INPUT)
    else:
        x = torch.randn(SEQ, batch, INPUT)
    fns = {"torch.nn": lambda: _step(ref, x, training)}
    fns.update(_backend_fns(kit, x, training, backends, **({} if lengths is None else {"lengths": lengths})))
    tokens = SEQ * batch if lengths is None else int(lengths.sum())
    speed = measure(fns, tokens, rounds, round_s)
    chosen = {}
    if "auto" in backends:  # after the runs: the decision (timed on auto's first call) is made, in this grad mode
        with torch.set_grad_enabled(training):
            chosen["auto"] = rnnkit.engine.resolve_backend("auto", kit, x, lengths).name
    return speed, chosen


def compiled_row(cell: str, training: bool, batch: int, hidden: int, backends: list[str], rounds: int,
                 round_s: float) -> dict[str, float]:
    """tokens/s of torch.compile(torch.nn module) and of torch.compile(rnnkit layer) on each back end."""
    torch_cls, kit_cls = CELLS[cell]
    ref = torch_cls(INPUT, hidden).train(training)
    x = torch.randn(SEQ, batch, INPUT)
    fns = {"torch.nn": _compiled_step(ref, x, training)}
    for name in backends:
        kit = kit_cls(INPUT, hidden, backend=name).train(training)
        kit.load_state_dict(ref.state_dict())
        fns[name] = _compiled_step(kit, x, training)
    return measure(fns, SEQ * batch, rounds, round_s)


def _compiled_step(module, x, training: bool):
    compiled = torch.compile(module)
    for _ in range(2):  # compile (forward and backward) and warm up outside the timing
        _step(compiled, x, training)
    return lambda: _step(compiled, x, training)


def extras_row(hidden: int, batch: int, backend: str, rounds: int, round_s: float):
    plain = rnnkit.LSTM(INPUT, hidden, backend=backend)
    normed = rnnkit.LSTM(INPUT, hidden, backend=backend, layer_norm=True)
    x = torch.randn(SEQ, batch, INPUT)
    fns = {"plain": lambda: _step(plain, x, True), "layer_norm": lambda: _step(normed, x, True)}
    return measure(fns, SEQ * batch, rounds, round_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="hidden 256 only, short rounds (about a minute)")
    parser.add_argument("--backends", default="fused,auto", help="rnnkit back ends to compare (comma-separated)")
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--sections", default="plain,lengths,extras,compile",
                        help="tables to print (comma-separated)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = [b for b in args.backends.split(",") if b]
    hiddens = [256] if args.quick else [128, 256, 512]
    rounds, round_s = (3, 0.05) if args.quick else (5, 0.2)
    print(f"# rnnkit engine benchmark: seq {SEQ}, input {INPUT}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    for line in machine.current().lines():
        print(f"# {line}")
    print(f"# auto: {'timed on first use of each kind' if autotune.enabled() else 'static rules (RNNKIT_AUTOTUNE=0)'}")
    worst: dict[str, tuple[float, str]] = {}
    head = " | ".join(f"{b} tok/s | {b} ×" for b in backends) + " |"
    sections = args.sections.split(",")
    shapes = [(b, h) for b in (1, 16, 64) for h in hiddens]
    tables = [("plain", "# equal lengths", shapes, False),
              ("lengths", "# random lengths in [10, 200] via `lengths` vs torch.nn padded to 200, real tokens/s",
               [(b, 256) for b in ((64,) if args.quick else (16, 64))], True)]
    for section, title, rows, varlen in tables:
        if section not in sections:
            continue
        print(f"\n{title}\n| cell | mode | batch | hidden | torch.nn tok/s | {head}")
        print("|" + "---|" * (head.count("|") + 5))
        for cell in args.cells.split(","):
            for training in (False, True):
                for batch, hidden in rows:
                    speed, chosen = compare(cell, training, batch, hidden, backends, rounds, round_s, varlen)
                    base = speed["torch.nn"]
                    cols = " | ".join(f"{speed[b]:,.0f} | {speed[b] / base:.2f}" + (
                        f" ({chosen[b]})" if b in chosen else "") for b in backends)
                    mode = "train" if training else "infer"
                    print(f"| {cell} | {mode} | {batch} | {hidden} | {base:,.0f} | {cols}", flush=True)
                    if "auto" in speed:
                        ratio, where = speed["auto"] / base, f"{cell} {mode} batch {batch} hidden {hidden}"
                        if section not in worst or ratio < worst[section][0]:
                            worst[section] = (ratio, where)
    if worst:
        print("\n# summary: worst auto/torch.nn " + "; ".join(
            f"{section} rows {ratio:.2f}× ({where})" for section, (ratio, where) in worst.items())
              + f"; first-use tuning {autotune.spent()['seconds']:.2f} s for {autotune.spent()['tunings']} kinds"
              + f", load average {os.getloadavg()[0]:.2f}")
    if "compile" in sections:
        compile_table(args, backends, rounds, round_s)
    if "extras" not in sections:
        return
    print("\n# LayerNorm-LSTM training cost against plain LSTM in the same engine (≤ 1.5 is the target)")
    print("| engine | batch | hidden | plain tok/s | layer_norm tok/s | cost × |\n|---|---|---|---|---|---|")
    for engine in ("fused", "reference"):
        for batch in ((16,) if args.quick else (16, 64)):
            try:
                speed = extras_row(256, batch, engine, rounds, round_s)
            except (TypeError, ValueError) as err:
                print(f"| {engine} | {batch} | 256 | - | - | unavailable: {err} |")
                continue
            print(f"| {engine} | {batch} | 256 | {speed['plain']:,.0f} | {speed['layer_norm']:,.0f} | "
                  f"{speed['plain'] / speed['layer_norm']:.2f} |", flush=True)


def compile_table(args, backends: list[str], rounds: int, round_s: float) -> None:
    print("\n# torch.compile(rnnkit) against torch.compile(torch.nn), hidden 256 (compiled and warmed up first)")
    head = " | ".join(f"{b} tok/s | {b} ×" for b in backends) + " |"
    print(f"| cell | mode | batch | hidden | torch.nn tok/s | {head}\n|" + "---|" * (head.count("|") + 5))
    for cell in args.cells.split(","):
        for training in (False, True):
            for batch in (1, 16):
                speed = compiled_row(cell, training, batch, 256, backends, rounds, round_s)
                base = speed["torch.nn"]
                cols = " | ".join(f"{speed[b]:,.0f} | {speed[b] / base:.2f}" for b in backends)
                mode = "train" if training else "infer"
                print(f"| {cell} | {mode} | {batch} | 256 | {base:,.0f} | {cols}", flush=True)


if __name__ == "__main__":
    main()
